//! The memory against moto's DynamoDB: a key is new once, then seen before until it expires;
//! items are listed by their first part.

use activity_aware_memory::{Memory, Seen, key};
use test_world::MotoServer;

#[tokio::test]
async fn a_key_is_new_once_and_listed_by_its_first_part_until_it_expires() {
    let moto = MotoServer::start();
    let table = moto.create_familiarity_table("ids-familiarity").await;
    let memory = Memory::new(&moto.sdk_config().await, &table).unwrap();
    let now = 1_796_601_600;
    let coverage = key(["coverage", "777788889999", "eu-west-3"]);
    assert_eq!(memory.see(&coverage, now, 3_600).await.unwrap(), Seen::New);
    assert_eq!(
        memory.see(&coverage, now + 60, 3_600).await.unwrap(),
        Seen::Before("2026-12-07T00:00:00Z".into())
    );
    memory
        .see(&key(["told", "event-1"]), now, 3_600)
        .await
        .unwrap();
    let items = memory.items("coverage\u{1f}", now + 120).await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0].key.as_str(), items[0].seen_at),
        (coverage.as_str(), now + 60)
    );
    // Past its time, an item is neither listed nor remembered, whether or not DynamoDB has
    // deleted it yet.
    assert!(
        memory
            .items("coverage\u{1f}", now + 7_200)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        memory.see(&coverage, now + 7_200, 3_600).await.unwrap(),
        Seen::New
    );
    // Asking whether a key is held remembers nothing.
    let told = key(["told", "event-2"]);
    assert!(!memory.holds(&told, now).await.unwrap());
    assert!(!memory.holds(&told, now).await.unwrap());
    memory.see(&told, now, 60).await.unwrap();
    assert!(memory.holds(&told, now + 30).await.unwrap());
    assert!(!memory.holds(&told, now + 90).await.unwrap());
    // A table that is not there is an error, not an answer.
    let gone = Memory::new(&moto.sdk_config().await, "no-such-table").unwrap();
    assert!(gone.see(&coverage, now, 60).await.is_err());
}
