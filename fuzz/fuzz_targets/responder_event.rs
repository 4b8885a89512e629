//! What the open-port response reads of any event: never a panic; what it accepts names an
//! account and region that go into an ARN and a host name safely, and every command it would
//! print for a rule of the record is plain.
#![no_main]

use libfuzzer_sys::fuzz_target;
use response_security_group::{is_account_id, is_region, read_call, undo_command};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(call) = read_call(&event) else {
        return;
    };
    assert!(is_account_id(&call.account), "{:?}", call.account);
    assert!(is_region(&call.region), "{:?}", call.region);
    for rule in &call.recorded {
        if let Some(command) = undo_command("sg-0123456789abcdef0", &call.region, rule) {
            assert!(!command.contains(['\n', '`', '$', ';', '|', '&']), "{command}");
        }
    }
});
