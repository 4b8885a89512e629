//! Decode + transform throughput on the largest CloudWatch Logs delivery Lambda accepts, next to
//! plain base64 + gunzip of the same bytes.

use base64::Engine;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flate2::read::MultiGzDecoder;
use source_cloudtrail_cloudwatch_logs::{Detector, decode_and_transform};
use std::hint::black_box;
use std::io::Read;
use test_world::payloads::largest_cloudtrail_event;

fn decode(c: &mut Criterion) {
    let built = largest_cloudtrail_event();
    let data = built.event["awslogs"]["data"].as_str().unwrap().to_owned();
    eprintln!(
        "payload: {} records, {} bytes of event JSON, {} bytes decompressed",
        built.records, built.event_bytes, built.decompressed_bytes
    );
    let mut group = c.benchmark_group("largest CloudWatch Logs delivery");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(built.decompressed_bytes as u64));
    group.bench_function("base64 + gunzip only", |b| {
        b.iter(|| {
            let compressed = base64::engine::general_purpose::STANDARD
                .decode(black_box(&data))
                .unwrap();
            let mut json = Vec::new();
            MultiGzDecoder::new(&compressed[..])
                .read_to_end(&mut json)
                .unwrap();
            json
        })
    });
    let detector = Detector::default();
    group.bench_function("decode + transform to Messages", |b| {
        b.iter(|| decode_and_transform(black_box(data.clone()), &detector).unwrap())
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
