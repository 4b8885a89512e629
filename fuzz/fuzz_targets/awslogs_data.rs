//! `awslogs.data` as Lambda hands it over: any text is decoded or refused with an error, never
//! a panic. Half the inputs are wrapped as base64 of gzip so the fuzzer also reaches the parser.
#![no_main]

use base64::Engine;
use source_cloudtrail_cloudwatch_logs::Detector;
use libfuzzer_sys::fuzz_target;
use std::io::Write;

static DETECTOR: std::sync::LazyLock<Detector> = std::sync::LazyLock::new(Detector::default);

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let text = if first % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(rest).unwrap();
        base64::engine::general_purpose::STANDARD.encode(gzip.finish().unwrap())
    };
    let _ = source_cloudtrail_cloudwatch_logs::decode_and_transform(text, &DETECTOR);
});
