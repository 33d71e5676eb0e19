//! The body of a stored record, shared by backends:
//!
//! ```text
//! [u8 format = 1][32 bytes content hash][u16 LE id length][event_id][event JSON]
//! ```
//!
//! The content hash and the id travel with the event so that the
//! deduplication index can be rebuilt from the log without parsing JSON.

/// Record body format version.
const FORMAT: u8 = 1;

/// Encodes a record body.
pub fn encode_record_body(
    content_hash: &[u8; 32],
    event_id: &str,
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    let id = event_id.as_bytes();
    let id_len = u16::try_from(id.len()).expect("event ids are at most 128 characters");
    out.reserve(1 + 32 + 2 + id.len() + payload.len());
    out.push(FORMAT);
    out.extend_from_slice(content_hash);
    out.extend_from_slice(&id_len.to_le_bytes());
    out.extend_from_slice(id);
    out.extend_from_slice(payload);
}

/// A decoded record body, borrowing from the bytes.
pub struct RecordBody<'a> {
    pub content_hash: [u8; 32],
    pub event_id: &'a str,
    pub payload: &'a [u8],
}

/// Decodes a record body, or says what is wrong with it.
pub fn decode_record_body(body: &[u8]) -> Result<RecordBody<'_>, String> {
    if body.len() < 35 {
        return Err(format!("record body of {} bytes is too short", body.len()));
    }
    if body[0] != FORMAT {
        return Err(format!("unknown record format {}", body[0]));
    }
    let mut content_hash = [0u8; 32];
    content_hash.copy_from_slice(&body[1..33]);
    let id_len = u16::from_le_bytes([body[33], body[34]]) as usize;
    let rest = &body[35..];
    if rest.len() < id_len {
        return Err("record body shorter than its event id".into());
    }
    let event_id =
        std::str::from_utf8(&rest[..id_len]).map_err(|_| "event id is not UTF-8".to_string())?;
    Ok(RecordBody {
        content_hash,
        event_id,
        payload: &rest[id_len..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip() {
        let mut buf = Vec::new();
        encode_record_body(&[7; 32], "evt-1", b"{\"a\":1}", &mut buf);
        let b = decode_record_body(&buf).unwrap();
        assert_eq!(b.content_hash, [7; 32]);
        assert_eq!(b.event_id, "evt-1");
        assert_eq!(b.payload, b"{\"a\":1}");
        assert!(decode_record_body(&buf[..20]).is_err());
        buf[0] = 9;
        assert!(decode_record_body(&buf).is_err());
    }
}
