//! The rclone crypt decryptor on arbitrary ciphertext, fed in arbitrary pieces: an error or
//! plaintext, never a panic; and a round trip of the input as plaintext.
#![no_main]

use cloudsyncd::crypt::{ContentCipher, Decryptor, Encryptor, Keys, Nonce, decrypted_size, encrypted_size};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = Keys::from_parts([7; 32], [8; 32], [9; 16]);
    let cipher = ContentCipher::new(&keys);
    let split = data.first().map_or(1, |b| usize::from(*b) + 1);
    let mut d = Decryptor::new(&cipher);
    let mut out = Vec::new();
    let mut ok = true;
    for piece in data.chunks(split) {
        if d.update(piece, &mut out).is_err() {
            ok = false;
            break;
        }
    }
    if ok {
        let _ = d.finish(&mut out);
    }
    let _ = decrypted_size(data.len() as u64);

    let mut enc = Encryptor::new(&cipher, Nonce::from_bytes([3; 24]));
    let mut ct = Vec::new();
    enc.update(data, &mut ct);
    enc.finish(&mut ct);
    assert_eq!(ct.len() as u64, encrypted_size(data.len() as u64));
    let mut d = Decryptor::new(&cipher);
    let mut back = Vec::new();
    d.update(&ct, &mut back).expect("own ciphertext decrypts");
    d.finish(&mut back).expect("own ciphertext is complete");
    assert_eq!(back, data);
});
