//! OTLP protobuf payloads: decoding never panics, and what decodes re-encodes to protobuf and
//! JSON that decode again (a hop recorded from protobuf must be storable in a case file).
#![no_main]

use libfuzzer_sys::fuzz_target;
use softprobe_runtime::otlp::{WireFormat, decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(traces) = decode(data, WireFormat::Protobuf) else {
        return;
    };
    let proto = encode(&traces, WireFormat::Protobuf);
    let back = decode(&proto, WireFormat::Protobuf)
        .unwrap_or_else(|e| panic!("our own protobuf does not decode: {e}"));
    // Compared as bytes: NaN is never equal to itself.
    assert_eq!(
        encode(&back, WireFormat::Protobuf),
        proto,
        "protobuf round trip changed the traces"
    );
    let json = encode(&traces, WireFormat::Json);
    decode(&json, WireFormat::Json).unwrap_or_else(|e| {
        panic!(
            "protobuf traces re-encoded as JSON do not decode: {e}\n{}",
            String::from_utf8_lossy(&json)
        )
    });
});
