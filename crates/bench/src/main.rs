//! `bench`: measures the figures the project aims for in one run, prints them as a markdown table
//! next to their targets and saves the table (the README's Performance section quotes it).
//!
//! `./dev.sh bench` builds what it needs first (release binaries, Lambda zips, the criterion
//! decode benchmark) and then runs this; see `--help` for running it by hand.

mod criterion_results;
mod figures;
mod measure;
mod options;
mod report;
mod stats;

use std::future::Future;
use std::sync::Arc;

use measure::{DESTINATION, KMS_ENCRYPTION, SOURCE, World};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let options = match options::parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let functions = test_world::template::functions();
    let binary = |function: &str| options.bin_dir.join(function);
    for function in &functions {
        if !binary(function).is_file() {
            eprintln!(
                "bench: {} is missing; build it first (cargo build --release -p {function}) or run ./dev.sh bench",
                binary(function).display()
            );
            std::process::exit(2);
        }
    }

    eprintln!("bench: starting moto and the Slack stand-in ...");
    let world = Arc::new(World::start().await);

    // Cold starts first, while nothing else has warmed or loaded the machine.
    let mut cold_rows = Vec::new();
    for function in &functions {
        eprintln!("bench: cold start of {function} x{} ...", options.cold_runs);
        let (world, bin, function_name, runs) = (
            world.clone(),
            binary(function),
            function.clone(),
            options.cold_runs,
        );
        let result = run_section(async move {
            let env = world.env(&function_name, &figures::fake_topic());
            measure::cold_starts(&bin, &env, runs).await
        })
        .await;
        cold_rows.push(figures::cold_start_row(function, result));
    }

    eprintln!(
        "bench: {}-record delivery: source binary x{} vs one Publish per record x{} ...",
        figures::thousands(figures::BATCH_RECORDS),
        options.invoke_runs,
        options.per_record_runs
    );
    let batch = {
        let (world, bin) = (world.clone(), binary(SOURCE));
        let (invoke_runs, per_record_runs) = (options.invoke_runs, options.per_record_runs);
        run_section(async move {
            measure::batch_vs_per_record(
                &world,
                &bin,
                figures::BATCH_RECORDS,
                invoke_runs,
                per_record_runs,
            )
            .await
        })
        .await
    };

    eprintln!("bench: peak RSS of each function (the source on the largest payload) ...");
    let source_rss = {
        let (world, bin) = (world.clone(), binary(SOURCE));
        run_section(async move { measure::source_peak_rss(&world, &bin).await }).await
    };
    let destination_rss = {
        let (world, bin) = (world.clone(), binary(DESTINATION));
        run_section(async move {
            let message = measure::sample_message()?;
            measure::destination_peak_rss(&world, &bin, message).await
        })
        .await
    };
    let kms_rss = {
        let (world, bin) = (world.clone(), binary(KMS_ENCRYPTION));
        run_section(async move { measure::kms_encryption_peak_rss(&world, &bin).await }).await
    };

    let mut floods = Vec::new();
    for denials in [1_000, 10_000] {
        eprintln!("bench: a flood of about {denials} denials to a rate-limited Slack ...");
        let (world, bin_dir) = (world.clone(), options.bin_dir.clone());
        floods.push(
            run_section(async move { measure::flood(&world, &bin_dir, denials).await }).await,
        );
    }
    drop(world);

    eprintln!("bench: the noise figure and the recall of Panther's rules ...");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let detector = source_eventbridge::noise::measuring_detector();
    let noise = source_eventbridge::noise::corpus(&fixtures).map(|corpus| {
        let real = corpus
            .iter()
            .filter(|(class, _)| class == "real")
            .map(|(_, record)| record);
        source_eventbridge::noise::measure(real, &detector)
    });
    let recall = source_eventbridge::noise::panther_recall(&fixtures, &detector);

    let mut rows = vec![figures::batch_row(batch), figures::decode_row(&options)];
    rows.extend(cold_rows);
    rows.extend([
        figures::source_rss_row(source_rss),
        figures::other_rss_row(
            "Peak RSS (VmHWM), destination-slack: one SNS event, KMS decrypt + one Slack post",
            destination_rss,
        ),
        figures::other_rss_row(
            "Peak RSS (VmHWM), kms-encryption: one Create request, KMS Encrypt + answer PUT",
            kms_rss,
        ),
        figures::flood_posts_row(&floods[0]),
        figures::flood_drain_row(&floods[1]),
        figures::flood_rss_row(&floods[1]),
    ]);
    rows.extend(figures::noise_rows(&noise));
    rows.push(figures::recall_row(&recall));
    rows.extend(figures::zip_rows(&functions, &options.zips));

    let text = format!("{}\n{}", figures::machine(), report::table(&rows));
    println!("{text}");
    if let Some(dir) = options.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&options.out, &text) {
        Ok(()) => eprintln!("bench: saved to {}", options.out.display()),
        Err(e) => eprintln!("bench: cannot save {}: {e}", options.out.display()),
    }
    if rows
        .iter()
        .any(|r| r.verdict == report::Verdict::NotMeasured)
    {
        std::process::exit(1);
    }
}

/// Runs one measurement as its own task, so that a panic inside test-world (it panics with
/// context when a process or moto misbehaves) costs that row, not the whole table.
async fn run_section<T: Send + 'static>(
    section: impl Future<Output = Result<T, String>> + Send + 'static,
) -> Result<T, String> {
    match tokio::spawn(section).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err("failed (panicked; see the log above)".to_owned()),
        Err(e) => Err(format!("failed ({e})")),
    }
}
