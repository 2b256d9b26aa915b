//! Text encodings of encrypted names, decoding exactly as rclone's Go code does: base32hex
//! (lower case, no padding, case-insensitive and lenient about trailing bits), URL-safe
//! base64 without padding (also used by obscure), and base32768 (Max-Sum `SafeEncoding`).
//! May import: std, `super::error`.

use super::error::NameError;

const BASE32HEX: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Lower-case base32hex without padding (rclone's default name encoding).
pub(super) fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let v = buf.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..chars {
            let idx = (v >> (35 - 5 * i)) & 31;
            out.push(char::from(BASE32HEX[usize::try_from(idx).unwrap_or(0)]));
        }
    }
    out
}

const fn base32_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'V' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Go's `unicode.ToUpper` on one rune, approximated by Rust's mapping where it is one rune.
fn go_to_upper(c: char) -> char {
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// rclone's `caseInsensitiveBase32Encoding.DecodeString`: refuse a trailing `=`, upper-case,
/// re-pad to a multiple of 8, then Go's `base32.HexEncoding.DecodeString` (which skips
/// `\r`/`\n` and ignores non-zero trailing bits).
pub(super) fn base32_decode(s: &str) -> Result<Vec<u8>, NameError> {
    if s.ends_with('=') {
        return Err(NameError::Base32Padding);
    }
    let pad = s.len().next_multiple_of(8) - s.len();
    let mut src: Vec<u8> = s.chars().map(go_to_upper).collect::<String>().into_bytes();
    src.extend(std::iter::repeat_n(b'=', pad));
    src.retain(|&b| b != b'\r' && b != b'\n');
    go_base32_decode(&src)
}

/// A port of the algorithm of Go's padded base32 decoder.
fn go_base32_decode(src: &[u8]) -> Result<Vec<u8>, NameError> {
    let bad = |offset| NameError::BadEncoding { encoding: "base32", offset };
    let olen = src.len();
    let mut out = Vec::with_capacity(olen / 8 * 5);
    let mut pos = 0;
    let mut end = false;
    while pos < olen && !end {
        let mut dbuf = [0u8; 8];
        let mut dlen = 8;
        let mut j = 0;
        while j < 8 {
            if pos == olen {
                // Missing padding.
                return Err(bad(olen - j));
            }
            let c = src[pos];
            pos += 1;
            let remaining = olen - pos;
            if c == b'=' && j >= 2 && remaining < 8 {
                if remaining + j < 7 {
                    return Err(bad(olen));
                }
                for k in 0..7 - j {
                    if remaining > k && src[pos + k] != b'=' {
                        // Go reports one byte before the offending one.
                        return Err(bad(pos + k - 1));
                    }
                }
                dlen = j;
                end = true;
                if matches!(dlen, 1 | 3 | 6) {
                    return Err(bad(pos - 1));
                }
                break;
            }
            match base32_value(c) {
                Some(v) => dbuf[j] = v,
                None => return Err(bad(pos - 1)),
            }
            j += 1;
        }
        let v = dbuf.iter().fold(0u64, |acc, &d| (acc << 5) | u64::from(d));
        let bytes = v.to_be_bytes();
        let n = match dlen {
            8 => 5,
            7 => 4,
            5 => 3,
            4 => 2,
            _ => 1,
        };
        out.extend_from_slice(&bytes[3..3 + n]);
    }
    Ok(out)
}

/// URL-safe base64 without padding (Go `base64.RawURLEncoding`).
pub(super) fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity((data.len() * 4).div_ceil(3));
    for chunk in data.chunks(3) {
        let mut buf = [0u8; 3];
        buf[..chunk.len()].copy_from_slice(chunk);
        let v = (u32::from(buf[0]) << 16) | (u32::from(buf[1]) << 8) | u32::from(buf[2]);
        for i in 0..=chunk.len() {
            let idx = (v >> (18 - 6 * i)) & 63;
            out.push(char::from(BASE64URL[usize::try_from(idx).unwrap_or(0)]));
        }
    }
    out
}

const fn base64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

/// Go `base64.RawURLEncoding.DecodeString`: skips `\r`/`\n`, ignores trailing bits, no `=`.
pub(super) fn base64_decode(s: &str) -> Result<Vec<u8>, NameError> {
    let bad = |offset| NameError::BadEncoding { encoding: "base64", offset };
    let src = s.as_bytes();
    let mut out = Vec::with_capacity(src.len() * 3 / 4);
    let mut quantum = [0u8; 4];
    let mut j = 0;
    for (i, &c) in src.iter().enumerate() {
        if c == b'\r' || c == b'\n' {
            continue;
        }
        quantum[j] = base64_value(c).ok_or_else(|| bad(i))?;
        j += 1;
        if j == 4 {
            push_base64_quantum(quantum, 4, &mut out);
            j = 0;
        }
    }
    match j {
        0 => {}
        1 => return Err(bad(src.len() - 1)),
        _ => push_base64_quantum(quantum, j, &mut out),
    }
    Ok(out)
}

fn push_base64_quantum(q: [u8; 4], len: usize, out: &mut Vec<u8>) {
    let mut v = 0u32;
    for (i, &d) in q.iter().enumerate() {
        v |= u32::from(if i < len { d } else { 0 }) << (18 - 6 * i);
    }
    let bytes = v.to_be_bytes();
    out.extend_from_slice(&bytes[1..len]);
}

/// Starts of the 32-code-point blocks for 15-bit groups (base32768 "B15"), as ranges.
const B15_RANGES: [(u16, u16); 52] = [
    (0x04A0, 0x04BF),
    (0x0500, 0x051F),
    (0x0680, 0x06BF),
    (0x0760, 0x079F),
    (0x07C0, 0x07DF),
    (0x1000, 0x101F),
    (0x10A0, 0x10BF),
    (0x1100, 0x115F),
    (0x1180, 0x119F),
    (0x11E0, 0x123F),
    (0x1260, 0x127F),
    (0x12E0, 0x12FF),
    (0x1320, 0x133F),
    (0x13A0, 0x13DF),
    (0x1420, 0x165F),
    (0x16A0, 0x16DF),
    (0x1780, 0x179F),
    (0x1820, 0x185F),
    (0x18C0, 0x18DF),
    (0x1980, 0x199F),
    (0x19E0, 0x19FF),
    (0x1A20, 0x1A3F),
    (0x1BC0, 0x1BDF),
    (0x1C00, 0x1C1F),
    (0x1D00, 0x1D1F),
    (0x21E0, 0x21FF),
    (0x22C0, 0x22DF),
    (0x2340, 0x23DF),
    (0x2400, 0x241F),
    (0x2500, 0x275F),
    (0x2780, 0x27BF),
    (0x2800, 0x297F),
    (0x29A0, 0x29BF),
    (0x2A20, 0x2A5F),
    (0x2A80, 0x2ABF),
    (0x2AE0, 0x2B5F),
    (0x2C00, 0x2C1F),
    (0x2C80, 0x2CDF),
    (0x2D00, 0x2D1F),
    (0x2D40, 0x2D5F),
    (0x2EA0, 0x2EDF),
    (0x31C0, 0x31DF),
    (0x3400, 0x4D9F),
    (0x4DC0, 0x9FBF),
    (0xA000, 0xA47F),
    (0xA4A0, 0xA4BF),
    (0xA500, 0xA5FF),
    (0xA640, 0xA65F),
    (0xA6A0, 0xA6DF),
    (0xA700, 0xA75F),
    (0xA780, 0xA79F),
    (0xA840, 0xA85F),
];

/// Starts of the 32-code-point blocks for the final 7-bit group ("B7").
const B7: [u16; 4] = [0x0180, 0x0240, 0x0260, 0x0280];

const fn build_b15() -> [u16; 1024] {
    let mut out = [0u16; 1024];
    let mut n = 0;
    let mut r = 0;
    while r < B15_RANGES.len() {
        let (start, end) = B15_RANGES[r];
        let mut cp = start;
        while cp < end {
            out[n] = cp;
            n += 1;
            cp += 32;
        }
        r += 1;
    }
    assert!(n == 1024, "B15 must have 1024 blocks");
    out
}

static B15: [u16; 1024] = build_b15();

/// Per 32-code-point block of the BMP (`cp >> 5`): the value of its first code point (group
/// index << 5), whether it is a final 7-bit block, or nothing if not in the alphabet.
#[derive(Clone, Copy)]
enum Block32768 {
    Invalid,
    Full(u16),
    Final(u16),
}

#[allow(clippy::cast_possible_truncation)] // indexes < 1024
const fn build_decode_map() -> [Block32768; 2048] {
    let b15 = build_b15();
    let mut map = [Block32768::Invalid; 2048];
    let mut i = 0;
    while i < b15.len() {
        map[(b15[i] >> 5) as usize] = Block32768::Full((i as u16) << 5);
        i += 1;
    }
    let mut i = 0;
    while i < B7.len() {
        map[(B7[i] >> 5) as usize] = Block32768::Final((i as u16) << 5);
        i += 1;
    }
    map
}

static DECODE_32768: [Block32768; 2048] = build_decode_map();

fn b32768_char(code: u16) -> char {
    // Every alphabet block lies in the BMP outside the surrogates.
    char::from_u32(u32::from(code)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// base32768 (Max-Sum `SafeEncoding`): 15 bits per character, big-endian bit order, the
/// tail padded with 1-bits.
#[allow(clippy::cast_possible_truncation)] // values are masked to 15 bits first
pub(super) fn base32768_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(15) * 8 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        if bits >= 15 {
            bits -= 15;
            let v = (acc >> bits) & 0x7FFF;
            out.push(b32768_char(B15[(v >> 5) as usize] | (v & 31) as u16));
        }
    }
    if bits > 0 {
        if bits <= 7 {
            let pad = 7 - bits;
            let v = ((acc << pad) | ((1 << pad) - 1)) & 0x7F;
            out.push(b32768_char(B7[(v >> 5) as usize] | (v & 31) as u16));
        } else {
            let pad = 15 - bits;
            let v = ((acc << pad) | ((1 << pad) - 1)) & 0x7FFF;
            out.push(b32768_char(B15[(v >> 5) as usize] | (v & 31) as u16));
        }
    }
    out
}

/// Max-Sum `SafeEncoding.DecodeString`: drops `\r`/`\n`, stops at the first final (7-bit)
/// character, and reports offsets in bytes of UTF-16 (as Go does).
#[allow(clippy::cast_possible_truncation)] // bytes are cut from 15-bit groups on purpose
pub(super) fn base32768_decode(s: &str) -> Result<Vec<u8>, NameError> {
    let units: Vec<u16> = s.chars().filter(|&c| c != '\r' && c != '\n').collect::<String>().encode_utf16().collect();
    let mut out = Vec::with_capacity(units.len() * 15 / 8);
    let mut left: u8 = 0;
    let mut leftn: u32 = 0;
    for (i, &unit) in units.iter().enumerate() {
        let low = unit & 31;
        match DECODE_32768[usize::from(unit >> 5)] {
            Block32768::Invalid => {
                return Err(NameError::BadEncoding { encoding: "base32768", offset: i * 2 });
            }
            Block32768::Final(base) => {
                let d = base | low;
                if leftn > 0 {
                    out.push((left << (8 - leftn)) | (d >> (leftn - 1)) as u8);
                }
                return Ok(out);
            }
            Block32768::Full(base) => {
                let d = base | low;
                if leftn > 0 {
                    out.push((left << (8 - leftn)) | (d >> (7 + leftn)) as u8);
                    out.push((d >> (leftn - 1)) as u8);
                    left = (d as u8) & ((1u8 << (leftn - 1)) - 1);
                    leftn -= 1;
                } else {
                    out.push((d >> 7) as u8);
                    left = (d as u8) & 0x7F;
                    leftn = 7;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648_hex_lowercase() {
        assert_eq!(base32_encode(b""), "");
        assert_eq!(base32_encode(b"f"), "co");
        assert_eq!(base32_encode(b"fo"), "cpng");
        assert_eq!(base32_encode(b"foo"), "cpnmu");
        assert_eq!(base32_encode(b"foob"), "cpnmuog");
        assert_eq!(base32_encode(b"fooba"), "cpnmuoj1");
        assert_eq!(base32_encode(b"foobar"), "cpnmuoj1e8");
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            assert_eq!(base32_decode(&base32_encode(s.as_bytes())).unwrap(), s.as_bytes());
            let upper = base32_encode(s.as_bytes()).to_uppercase();
            assert_eq!(base32_decode(&upper).unwrap(), s.as_bytes());
        }
    }

    #[test]
    fn base32_is_lenient_like_go() {
        // Non-zero trailing bits are accepted.
        assert_eq!(base32_decode("cp").unwrap(), b"f");
        assert_eq!(base32_decode("co").unwrap(), b"f");
        // Lengths 1, 3 and 6 mod 8 are impossible; offset is where padding starts.
        for (s, off) in [("c", 1), ("cpn", 3), ("cpnmuo", 6), ("0000000000000000000000000", 25)] {
            assert_eq!(base32_decode(s), Err(NameError::BadEncoding { encoding: "base32", offset: off }));
        }
        assert_eq!(base32_decode("not!base32"), Err(NameError::BadEncoding { encoding: "base32", offset: 3 }));
        assert_eq!(base32_decode("co=="), Err(NameError::Base32Padding));
        // Go skips newlines, but rclone pads by the length with them: "c\no" is 3 long, gets
        // 5 "=", and the 7 bytes left after dropping "\n" are short of padding.
        assert_eq!(base32_decode("c\no"), Err(NameError::BadEncoding { encoding: "base32", offset: 7 }));
    }

    #[test]
    fn base64_matches_go_raw_url() {
        assert_eq!(base64_encode(b"\xfb\xff"), "-_8");
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            assert_eq!(base64_decode(&base64_encode(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fooba"), "Zm9vYmE");
        assert!(base64_decode("Zm9vYmE=").is_err());
        assert!(base64_decode("Z").is_err());
        assert!(base64_decode("Zm+v").is_err());
        // Trailing bits are ignored, as Go's non-strict decoder does.
        assert_eq!(base64_decode("Zh").unwrap(), b"f");
    }

    #[test]
    fn base32768_round_trips_every_length_and_tail() {
        for len in 0..64usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + len).to_le_bytes()[0]).collect();
            let enc = base32768_encode(&data);
            assert_eq!(enc.chars().count(), (8 * len).div_ceil(15));
            assert_eq!(base32768_decode(&enc).unwrap(), data, "len {len}");
        }
        for data in [[0u8; 16], [0xFF; 16]] {
            assert_eq!(base32768_decode(&base32768_encode(&data)).unwrap(), data);
        }
        assert!(base32768_decode("a").is_err());
        assert!(base32768_decode("😀").is_err());
    }
}
