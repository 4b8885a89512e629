//! What a Lambda deployment zip holds: the `bootstrap` executable, for which machine.

use std::io::Read;

/// The `bootstrap` of a Lambda zip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// ELF `e_machine`: 183 for aarch64, 62 for x86_64.
    pub machine: u16,
    /// The Unix permission bits the zip records.
    pub mode: u32,
    pub size: usize,
}

impl Bootstrap {
    pub fn architecture(&self) -> &'static str {
        match self.machine {
            183 => "arm64",
            62 => "x86_64",
            _ => "unknown",
        }
    }
}

/// Reads `bootstrap` from a zip's central directory and checks that it is an ELF executable.
pub fn bootstrap_of(zip: &[u8]) -> Result<Bootstrap, String> {
    let u16_at = |at: usize| -> Result<u16, String> {
        zip.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated zip".to_owned())
    };
    let u32_at = |at: usize| -> Result<u32, String> {
        zip.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| "truncated zip".to_owned())
    };
    let end = (0..zip.len().saturating_sub(21))
        .rev()
        .find(|&at| zip[at..].starts_with(&[0x50, 0x4b, 0x05, 0x06]))
        .ok_or("not a zip: no end of central directory")?;
    let entries = u16_at(end + 10)? as usize;
    let mut at = u32_at(end + 16)? as usize;
    for _ in 0..entries {
        if u32_at(at)? != 0x0201_4b50 {
            return Err("a central directory entry is malformed".into());
        }
        let method = u16_at(at + 10)?;
        let compressed = u32_at(at + 20)? as usize;
        let name_len = u16_at(at + 28)? as usize;
        let extra_len = u16_at(at + 30)? as usize;
        let comment_len = u16_at(at + 32)? as usize;
        let mode = u32_at(at + 38)? >> 16;
        let local = u32_at(at + 42)? as usize;
        let name = zip
            .get(at + 46..at + 46 + name_len)
            .ok_or("truncated zip")?;
        if name == b"bootstrap" {
            let data_at = local + 30 + u16_at(local + 26)? as usize + u16_at(local + 28)? as usize;
            let data = zip
                .get(data_at..data_at + compressed)
                .ok_or("truncated zip")?;
            let content = match method {
                0 => data.to_vec(),
                8 => {
                    let mut out = Vec::new();
                    flate2::read::DeflateDecoder::new(data)
                        .read_to_end(&mut out)
                        .map_err(|e| format!("bootstrap does not inflate: {e}"))?;
                    out
                }
                other => return Err(format!("bootstrap is compressed with method {other}")),
            };
            if !content.starts_with(b"\x7fELF") || content.len() < 20 {
                return Err("bootstrap is not an ELF executable".into());
            }
            return Ok(Bootstrap {
                machine: u16::from_le_bytes([content[18], content[19]]),
                mode: mode & 0o7777,
                size: content.len(),
            });
        }
        at += 46 + name_len + extra_len + comment_len;
    }
    Err("the zip holds no bootstrap".into())
}
