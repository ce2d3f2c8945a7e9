//! RFC 6455 framing, pure: header parsing and frame encoding, no I/O.
//!
//! The pump only needs frame *boundaries* and the payload of the few messages it
//! inspects, so this module parses headers and leaves payload bytes where they
//! are. Headers are at most 14 bytes: [`parse_header`] is called again with more
//! bytes whenever it answers "incomplete".

use thiserror::Error;

/// Longest possible header: 2 bytes + 8-byte length + 4-byte masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less".
pub const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Frame opcodes (RFC 6455 §5.2). Reserved values are a [`FrameError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    pub fn from_u8(bits: u8) -> Option<Self> {
        match bits {
            0x0 => Some(Self::Continuation),
            0x1 => Some(Self::Text),
            0x2 => Some(Self::Binary),
            0x8 => Some(Self::Close),
            0x9 => Some(Self::Ping),
            0xA => Some(Self::Pong),
            _ => None,
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// RFC 6455 §5.5: opcodes with the high bit set are control frames.
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// A parsed frame header. The payload follows `header_len` bytes after its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits (RSV1 = 0b100). Non-zero only when an
    /// extension was negotiated, which the gate never lets happen.
    pub rsv: u8,
    pub opcode: OpCode,
    /// Masking key; RFC 6455 §5.3: present on every client-to-server frame.
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    pub header_len: usize,
}

impl FrameHeader {
    /// RSV1 is the permessage-deflate "compressed" bit (RFC 7692 §6).
    pub fn rsv1(&self) -> bool {
        self.rsv & 0b100 != 0
    }
}

/// A header that can never become valid, however many bytes follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    #[error("control frame payload longer than 125 bytes")]
    ControlTooLong,
    #[error("fragmented control frame")]
    FragmentedControl,
    /// RFC 6455 §5.2: "the most significant bit MUST be 0" in a 64-bit length.
    #[error("64-bit payload length with the most significant bit set")]
    LengthOverflow,
}

/// Parse the frame header at the start of `buf`.
///
/// `Ok(None)` means more bytes are needed. Non-minimal length encodings are
/// accepted (as most implementations do); the pump forwards bytes unchanged, so
/// being lenient here cannot change what the receiver sees.
///
/// # Errors
/// A [`FrameError`] when the header breaks a rule no further byte can fix.
pub fn parse_header(buf: &[u8]) -> Result<Option<FrameHeader>, FrameError> {
    let (first, second) = match buf {
        [first, second, ..] => (*first, *second),
        _ => return Ok(None),
    };
    let fin = first & 0x80 != 0;
    let rsv = (first >> 4) & 0b111;
    let opcode = OpCode::from_u8(first & 0x0F).ok_or(FrameError::ReservedOpcode(first & 0x0F))?;
    let masked = second & 0x80 != 0;
    let short_len = second & 0x7F;

    if opcode.is_control() {
        if !fin {
            return Err(FrameError::FragmentedControl);
        }
        if u64::from(short_len) > MAX_CONTROL_PAYLOAD {
            return Err(FrameError::ControlTooLong);
        }
    }

    let (payload_len, mut pos) = match short_len {
        126 => match read_array::<2>(buf, 2) {
            Some(bytes) => (u64::from(u16::from_be_bytes(bytes)), 4),
            None => return Ok(None),
        },
        127 => match read_array::<8>(buf, 2) {
            Some(bytes) => {
                let len = u64::from_be_bytes(bytes);
                if len >> 63 != 0 {
                    return Err(FrameError::LengthOverflow);
                }
                (len, 10)
            }
            None => return Ok(None),
        },
        len => (u64::from(len), 2),
    };

    let mask = if masked {
        match read_array::<4>(buf, pos) {
            Some(key) => {
                pos += 4;
                Some(key)
            }
            None => return Ok(None),
        }
    } else {
        None
    };

    Ok(Some(FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        payload_len,
        header_len: pos,
    }))
}

fn read_array<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// XOR `data` with the masking key (RFC 6455 §5.3), where `data` starts
/// `offset` bytes into the payload. Masking and unmasking are the same operation.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: u64) {
    let shift = (offset % 4) as usize;
    let key = [
        mask[shift % 4],
        mask[(shift + 1) % 4],
        mask[(shift + 2) % 4],
        mask[(shift + 3) % 4],
    ];
    let mut chunks = data.chunks_exact_mut(4);
    for chunk in &mut chunks {
        for (byte, k) in chunk.iter_mut().zip(key) {
            *byte ^= k;
        }
    }
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key) {
        *byte ^= k;
    }
}

/// Encode one complete (FIN) frame. With `mask`, the frame is a client frame and
/// the payload is masked with that key.
pub fn encode_frame(opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_HEADER_LEN + payload.len());
    out.push(0x80 | opcode.as_u8());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => out.push(mask_bit | len as u8),
        len @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    let body_start = match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.len()
        }
        None => out.len(),
    };
    out.extend_from_slice(payload);
    if let (Some(key), Some(body)) = (mask, out.get_mut(body_start..)) {
        apply_mask(body, key, 0);
    }
    out
}

/// Encode a close frame (RFC 6455 §5.5.1): 2-byte status code, then a UTF-8
/// reason cut (on a character boundary) to fit the 125-byte control limit.
pub fn encode_close(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    let max_reason = MAX_CONTROL_PAYLOAD as usize - 2;
    let mut cut = reason.len().min(max_reason);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = Vec::with_capacity(2 + cut);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason.get(..cut).unwrap_or_default().as_bytes());
    encode_frame(OpCode::Close, &payload, mask)
}

/// The status code of a close frame payload, if it carries one.
pub fn close_code(payload: &[u8]) -> Option<u16> {
    read_array::<2>(payload, 0).map(u16::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_example_masked_hello_parses_and_unmasks() {
        // RFC 6455 §5.7: a single-frame masked text message "Hello".
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let header = parse_header(&frame).unwrap().unwrap();
        assert_eq!(
            header,
            FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Text,
                mask: Some([0x37, 0xfa, 0x21, 0x3d]),
                payload_len: 5,
                header_len: 6,
            }
        );
        let mut payload = frame[6..].to_vec();
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(payload, b"Hello");
    }

    #[test]
    fn encoder_reproduces_rfc_examples() {
        assert_eq!(
            encode_frame(OpCode::Text, b"Hello", Some([0x37, 0xfa, 0x21, 0x3d])),
            vec![
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
        assert_eq!(
            encode_frame(OpCode::Text, b"Hello", None),
            vec![0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
        // RFC 6455 §5.7: 256 bytes binary message in a single unmasked frame.
        let frame = encode_frame(OpCode::Binary, &[0u8; 256], None);
        assert_eq!(&frame[..4], &[0x82, 0x7E, 0x01, 0x00]);
        // 64 KiB binary message in a single unmasked frame.
        let frame = encode_frame(OpCode::Binary, &[0u8; 65536], None);
        assert_eq!(
            &frame[..10],
            &[0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]
        );
        assert_eq!(frame.len(), 65546);
    }

    #[test]
    fn header_split_at_every_byte_is_incomplete_until_whole() {
        let frame = encode_frame(OpCode::Binary, &[7u8; 70000], Some([1, 2, 3, 4]));
        for cut in 0..14 {
            assert_eq!(parse_header(&frame[..cut]), Ok(None), "cut at {cut}");
        }
        let header = parse_header(&frame[..14]).unwrap().unwrap();
        assert_eq!(header.payload_len, 70000);
        assert_eq!(header.header_len, 14);
        assert_eq!(header.mask, Some([1, 2, 3, 4]));
    }

    #[test]
    fn sixty_four_bit_length_is_read_big_endian() {
        let buf = [0x82, 0x7F, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05];
        let header = parse_header(&buf).unwrap().unwrap();
        assert_eq!(header.payload_len, (1u64 << 32) + 5);
        assert_eq!(header.header_len, 10);
        assert_eq!(header.mask, None);
    }

    #[test]
    fn sixty_four_bit_length_with_top_bit_is_invalid() {
        let buf = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(parse_header(&buf), Err(FrameError::LengthOverflow));
    }

    #[test]
    fn control_frame_rules_are_enforced() {
        // Ping without FIN.
        assert_eq!(
            parse_header(&[0x09, 0x00]),
            Err(FrameError::FragmentedControl)
        );
        // Close with a 16-bit length.
        assert_eq!(
            parse_header(&[0x88, 0x7E, 0x00, 0x7E]),
            Err(FrameError::ControlTooLong)
        );
        // 125 bytes is fine.
        let header = parse_header(&[0x89, 0x7D]).unwrap().unwrap();
        assert_eq!(header.opcode, OpCode::Ping);
        assert_eq!(header.payload_len, 125);
    }

    #[test]
    fn reserved_opcodes_are_invalid() {
        for op in [0x3u8, 0x7, 0xB, 0xF] {
            assert_eq!(
                parse_header(&[0x80 | op, 0x00]),
                Err(FrameError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn rsv_bits_are_reported() {
        let header = parse_header(&[0xC1, 0x80, 0, 0, 0, 0]).unwrap().unwrap();
        assert_eq!(header.rsv, 0b100);
        assert!(header.rsv1());
        let header = parse_header(&[0x01, 0x00]).unwrap().unwrap();
        assert!(!header.fin);
        assert_eq!(header.rsv, 0);
    }

    #[test]
    fn mask_applied_in_pieces_equals_mask_applied_at_once() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let data: Vec<u8> = (0..=255u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        let mut pieces = data.clone();
        let (a, rest) = pieces.split_at_mut(3);
        let (b, c) = rest.split_at_mut(10);
        apply_mask(a, key, 0);
        apply_mask(b, key, 3);
        apply_mask(c, key, 13);
        assert_eq!(pieces, whole);
    }

    #[test]
    fn close_frame_carries_code_and_truncated_reason() {
        let frame = encode_close(1008, "session revoked", None);
        assert_eq!(frame[..2], [0x88, 17]);
        assert_eq!(close_code(&frame[2..]), Some(1008));
        assert_eq!(&frame[4..], b"session revoked");

        let long = "é".repeat(100); // 200 bytes
        let frame = encode_close(1001, &long, Some([9, 9, 9, 9]));
        let header = parse_header(&frame).unwrap().unwrap();
        assert_eq!(header.payload_len, 124); // 2 + 61 two-byte characters
        let mut payload = frame[header.header_len..].to_vec();
        apply_mask(&mut payload, [9, 9, 9, 9], 0);
        assert_eq!(close_code(&payload), Some(1001));
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            if let Ok(Some(header)) = parse_header(&bytes) {
                prop_assert!(header.header_len <= bytes.len());
                prop_assert!(header.header_len <= MAX_HEADER_LEN);
            }
        }

        #[test]
        fn encoded_frames_parse_back(
            payload in prop_oneof![0usize..300, 65_530usize..65_540]
                .prop_flat_map(|len| proptest::collection::vec(any::<u8>(), len)),
            mask in proptest::option::of(any::<[u8; 4]>()),
            binary in any::<bool>(),
        ) {
            let opcode = if binary { OpCode::Binary } else { OpCode::Text };
            let frame = encode_frame(opcode, &payload, mask);
            let header = parse_header(&frame).unwrap().unwrap();
            prop_assert_eq!(header.opcode, opcode);
            prop_assert!(header.fin);
            prop_assert_eq!(header.mask, mask);
            prop_assert_eq!(header.payload_len, payload.len() as u64);
            prop_assert_eq!(header.header_len + payload.len(), frame.len());
            let mut body = frame[header.header_len..].to_vec();
            if let Some(key) = mask {
                apply_mask(&mut body, key, 0);
            }
            prop_assert_eq!(body, payload);
        }
    }
}
