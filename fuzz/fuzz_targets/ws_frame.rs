//! RFC 6455 frame headers (`ws::frame`): never panics, never claims more
//! header than it was given, needs every header byte, and round-trips with the
//! encoder and the masking function.
//!
//! Needs the ws branch (`--features ws`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessiongate::ws::frame::{
    MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, OpCode, apply_mask, close_code, encode_close,
    encode_frame, parse_header,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(header)) = parse_header(data) {
        assert!(header.header_len <= data.len().min(MAX_HEADER_LEN));
        assert!(matches!(header.header_len, 2 | 4 | 6 | 8 | 10 | 14));
        assert_eq!(header.mask.is_some(), data[1] & 0x80 != 0);
        if header.opcode.is_control() {
            assert!(header.fin && header.payload_len <= MAX_CONTROL_PAYLOAD);
        }
        // Every byte of the header is needed: shorter prefixes are "incomplete".
        for cut in 0..header.header_len {
            assert_eq!(parse_header(&data[..cut]), Ok(None), "prefix {cut}");
        }
    }

    let [op, m0, m1, m2, m3, payload @ ..] = data else {
        return;
    };
    let opcode = [
        OpCode::Text,
        OpCode::Binary,
        OpCode::Continuation,
        OpCode::Close,
    ][usize::from(*op % 4)];
    let payload = if opcode.is_control() {
        &payload[..payload.len().min(MAX_CONTROL_PAYLOAD as usize)]
    } else {
        payload
    };
    let mask = (op & 0x80 != 0).then_some([*m0, *m1, *m2, *m3]);
    let encoded = encode_frame(opcode, payload, mask);
    let header = parse_header(&encoded)
        .expect("encoded frame parses")
        .expect("encoded frame is complete");
    assert!(header.fin);
    assert_eq!(header.opcode, opcode);
    assert_eq!(header.mask, mask);
    assert_eq!(header.payload_len, payload.len() as u64);
    assert_eq!(header.header_len + payload.len(), encoded.len());
    let mut body = encoded[header.header_len..].to_vec();
    if let Some(key) = mask {
        // Unmasking in two pieces at any split equals unmasking at once.
        let split = usize::from(*m0) % (body.len() + 1);
        let (a, b) = body.split_at_mut(split);
        apply_mask(a, key, 0);
        apply_mask(b, key, split as u64);
    }
    assert_eq!(body, payload);

    let reason = String::from_utf8_lossy(payload);
    let code = u16::from_be_bytes([*m1, *m2]);
    let close = encode_close(code, &reason, None);
    let header = parse_header(&close)
        .expect("close parses")
        .expect("complete");
    assert_eq!(header.opcode, OpCode::Close);
    let body = &close[header.header_len..];
    assert!(body.len() as u64 <= MAX_CONTROL_PAYLOAD);
    assert_eq!(close_code(body), Some(code));
    assert!(
        std::str::from_utf8(&body[2..]).is_ok(),
        "reason cut on a char boundary"
    );
});
