//! The stack template is the one list of the functions: each `AWS::Lambda::Function` names its
//! crate in its `Code: ../dist/<crate>/<crate>.zip`. dev.sh, the stack test, the benchmark and
//! the local world all read the list from there.

use std::path::{Path, PathBuf};

/// infrastructure/cloudformation.yaml of this workspace.
pub fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infrastructure/cloudformation.yaml")
}

/// The function crates the template deploys, in template order.
pub fn functions_in(template: &str) -> Vec<String> {
    template
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Code: ../dist/"))
        .filter_map(|rest| {
            let (name, file) = rest.split_once('/')?;
            (file == format!("{name}.zip")).then(|| name.to_owned())
        })
        .collect()
}

/// The function crates of this workspace's template.
pub fn functions() -> Vec<String> {
    let path = template_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("test-world: cannot read {}: {e}", path.display()));
    functions_in(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_lists_every_function_crate() {
        let functions = functions();
        assert!(functions.len() >= 3, "{functions:?}");
        for function in &functions {
            let main = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(function)
                .join("src/main.rs");
            assert!(main.is_file(), "{function} is not a crate with a binary");
        }
        assert_eq!(
            functions_in("      Code: ../dist/a-b/a-b.zip\n      Code: ../dist/x/y.zip\n"),
            ["a-b"]
        );
    }
}
