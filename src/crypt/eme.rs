//! EME (ECB-Mix-ECB, Halevi–Rogaway 2003) over AES-256, exactly as `rfjakob/eme`
//! `Transform` does it (which rclone uses for names). May import: std, `aes`.

use aes::{
    Aes256, Block,
    cipher::{BlockDecrypt, BlockEncrypt},
};

/// Bytes per block.
pub(super) const BLOCK: usize = 16;
/// Most blocks EME accepts (rfjakob/eme panics above this).
pub(super) const MAX_BLOCKS: usize = 128;

/// Which way [`transform`] goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Direction {
    Encrypt,
    Decrypt,
}

/// Doubling in GF(2^128) with byte 0 least significant (rfjakob/eme `multByTwo`).
fn x2(b: &[u8; BLOCK]) -> [u8; BLOCK] {
    let mut out = [0u8; BLOCK];
    out[0] = (b[0] << 1) ^ if b[15] >= 0x80 { 0x87 } else { 0 };
    for j in 1..BLOCK {
        out[j] = (b[j] << 1) | (b[j - 1] >> 7);
    }
    out
}

fn xor(a: &[u8; BLOCK], b: &[u8; BLOCK]) -> [u8; BLOCK] {
    let mut out = [0u8; BLOCK];
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x ^ y;
    }
    out
}

fn aes(cipher: &Aes256, direction: Direction, input: &[u8; BLOCK]) -> [u8; BLOCK] {
    let mut block = Block::clone_from_slice(input);
    match direction {
        Direction::Encrypt => cipher.encrypt_block(&mut block),
        Direction::Decrypt => cipher.decrypt_block(&mut block),
    }
    block.into()
}

/// EME-transforms `input` (1 to 128 whole 16-byte blocks) under `tweak`. Returns `None` for
/// any other length.
pub(super) fn transform(cipher: &Aes256, tweak: &[u8; BLOCK], input: &[u8], direction: Direction) -> Option<Vec<u8>> {
    if input.is_empty() || !input.len().is_multiple_of(BLOCK) || input.len() / BLOCK > MAX_BLOCKS {
        return None;
    }
    let blocks: Vec<[u8; BLOCK]> = input
        .chunks_exact(BLOCK)
        .map(|c| {
            let mut b = [0u8; BLOCK];
            b.copy_from_slice(c);
            b
        })
        .collect();
    let m = blocks.len();

    // L is always made with the encrypt direction, also when decrypting.
    let zero = aes(cipher, Direction::Encrypt, &[0u8; BLOCK]);
    let mut l_table = Vec::with_capacity(m);
    let mut l = x2(&zero);
    for _ in 0..m {
        l_table.push(l);
        l = x2(&l);
    }

    // PPP_j = E(P_j xor L_j)
    let mut c: Vec<[u8; BLOCK]> =
        blocks.iter().zip(&l_table).map(|(p, l)| aes(cipher, direction, &xor(p, l))).collect();

    // MP = T xor PPP_0 xor ... xor PPP_{m-1}; MC = E(MP); M = MP xor MC
    let mp = c.iter().fold(*tweak, |acc, b| xor(&acc, b));
    let mc = aes(cipher, direction, &mp);
    let mut mask = xor(&mp, &mc);

    // CCC_j = PPP_j xor 2^j * M, j >= 1
    for block in c.iter_mut().skip(1) {
        mask = x2(&mask);
        *block = xor(block, &mask);
    }

    // CCC_0 = MC xor T xor CCC_1 xor ... xor CCC_{m-1}
    c[0] = c.iter().skip(1).fold(xor(&mc, tweak), |acc, b| xor(&acc, b));

    // C_j = E(CCC_j) xor L_j
    let mut out = Vec::with_capacity(input.len());
    for (block, l) in c.iter().zip(&l_table) {
        out.extend_from_slice(&xor(&aes(cipher, direction, block), l));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use aes::cipher::KeyInit;

    use super::*;

    #[test]
    fn x2_carries_from_byte_15_into_byte_0() {
        let mut b = [0u8; BLOCK];
        b[15] = 0x80;
        let mut want = [0u8; BLOCK];
        want[0] = 0x87;
        assert_eq!(x2(&b), want);
        let mut b = [0u8; BLOCK];
        b[0] = 0x81;
        let mut want = [0u8; BLOCK];
        want[0] = 0x02;
        want[1] = 0x01;
        assert_eq!(x2(&b), want);
    }

    #[test]
    fn round_trips_and_rejects_bad_lengths() {
        let cipher = Aes256::new(&[7u8; 32].into());
        let tweak = [9u8; BLOCK];
        for m in [1, 2, 3, 17, MAX_BLOCKS] {
            let p: Vec<u8> = (0..m * BLOCK).map(|i| (i * 31).to_le_bytes()[0]).collect();
            let c = transform(&cipher, &tweak, &p, Direction::Encrypt).unwrap();
            assert_ne!(c, p);
            let back = transform(&cipher, &tweak, &c, Direction::Decrypt).unwrap();
            assert_eq!(back, p);
        }
        for len in [0, 15, 17, (MAX_BLOCKS + 1) * BLOCK] {
            assert!(transform(&cipher, &tweak, &vec![0; len], Direction::Encrypt).is_none());
        }
    }
}
