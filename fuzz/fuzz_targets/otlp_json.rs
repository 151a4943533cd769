//! OTLP JSON payloads (`/v1/traces`, `/v1/inject`): decoding never panics, and what decodes
//! re-encodes to JSON and protobuf that decode to the same traces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use softprobe_runtime::otlp::{WireFormat, decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(traces) = decode(data, WireFormat::Json) else {
        return;
    };
    let json = encode(&traces, WireFormat::Json);
    let back = decode(&json, WireFormat::Json)
        .unwrap_or_else(|e| panic!("our own JSON does not decode: {e}"));
    // Compared as bytes: NaN is never equal to itself.
    assert_eq!(
        encode(&back, WireFormat::Json),
        json,
        "JSON round trip changed the traces"
    );
    let proto = encode(&traces, WireFormat::Protobuf);
    decode(&proto, WireFormat::Protobuf)
        .unwrap_or_else(|e| panic!("our own protobuf does not decode: {e}"));
});
