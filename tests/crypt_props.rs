//! Property tests of the crypt module: content round trips (push-style and `Read` adapters,
//! with random chunk and read sizes, block boundaries included), tamper and truncation
//! detection, ranged reads, the nonce counter, and name round trips in every mode.

use std::{
    io::{self, ErrorKind, Read},
    sync::OnceLock,
};

use cloudsyncd::crypt::{
    BLOCK_DATA_SIZE, BLOCK_SIZE, Cipher, CryptError, DecryptReader, Decryptor, HEADER_SIZE, MAGIC, NameEncoding,
    NameEncryption, NameOptions, Nonce, block_position, decrypted_size, encrypted_segment_len, encrypted_size,
};
use proptest::prelude::*;

const B: usize = BLOCK_DATA_SIZE;

/// One scrypt run for the whole test binary.
fn cipher() -> &'static Cipher {
    static C: OnceLock<Cipher> = OnceLock::new();
    C.get_or_init(|| Cipher::from_password("property tests", "pepper", NameOptions::default()))
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() }
}

/// Plaintext sizes from 0 to a bit over 3 blocks, often exactly on or next to a boundary.
fn plain_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        0..=3 * B + 100,
        prop::sample::select(vec![0, 1, 15, 16, 17, B - 1, B, B + 1, 2 * B - 1, 2 * B, 2 * B + 1, 3 * B]),
    ]
}

/// Cheap deterministic bytes (xorshift), so large plaintexts cost nothing to generate.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn seal(plain: &[u8], nonce: Nonce, chunks: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = cipher().encryptor(nonce);
    let mut rest = plain;
    let mut i = 0;
    while !rest.is_empty() {
        let n = chunks[i % chunks.len()].min(rest.len());
        enc.update(&rest[..n], &mut out);
        rest = &rest[n..];
        i += 1;
    }
    enc.finish(&mut out);
    out
}

fn open_push(data: &[u8], chunks: &[usize]) -> (Vec<u8>, Result<(), CryptError>) {
    let mut out = Vec::new();
    let mut dec = cipher().decryptor();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = chunks[i % chunks.len()].min(rest.len());
        if let Err(e) = dec.update(&rest[..n], &mut out) {
            return (out, Err(e));
        }
        rest = &rest[n..];
        i += 1;
    }
    let result = dec.finish(&mut out);
    (out, result)
}

/// Reads everything with reads of the given sizes (cycled).
fn read_all<R: Read>(mut reader: R, sizes: &[usize]) -> (Vec<u8>, io::Result<()>) {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let mut buf = vec![0u8; sizes[i % sizes.len()]];
        i += 1;
        match reader.read(&mut buf) {
            Ok(0) => return (out, Ok(())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (out, Err(e)),
        }
    }
}

/// A reader that hands out its data in pieces of the given sizes and says `Interrupted`
/// now and then, as real streams may.
struct Choppy<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    calls: usize,
}

impl Read for Choppy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(5) {
            return Err(io::Error::from(ErrorKind::Interrupted));
        }
        let n = self.sizes[self.calls % self.sizes.len()].min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

const fn choppy(data: &[u8], sizes: Vec<usize>) -> Choppy<'_> {
    Choppy { data, sizes, calls: 0 }
}

fn crypt_error(err: &io::Error) -> CryptError {
    err.get_ref().and_then(|e| e.downcast_ref::<CryptError>()).cloned().expect("CryptError inside io::Error")
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1..64usize, 1..3 * B, Just(B), Just(BLOCK_SIZE)], 1..6)
}

fn nonce() -> impl Strategy<Value = Nonce> {
    prop_oneof![
        any::<[u8; 24]>(),
        // Counters about to carry through many bytes.
        Just([0xff; 24]),
        Just({
            let mut n = [0xff; 24];
            n[8] = 0;
            n
        }),
    ]
    .prop_map(Nonce::from_bytes)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn push_style_round_trips(
        size in plain_size(),
        seed in any::<u64>(),
        nonce in nonce(),
        enc_chunks in chunk_sizes(),
        dec_chunks in chunk_sizes(),
    ) {
        let plain = bytes(size, seed);
        let sealed = seal(&plain, nonce, &enc_chunks);
        prop_assert_eq!(sealed.len() as u64, encrypted_size(size as u64));
        prop_assert_eq!(decrypted_size(sealed.len() as u64), Ok(size as u64));
        prop_assert_eq!(&sealed[..8], &MAGIC[..]);
        prop_assert_eq!(&sealed[8..32], &nonce.as_bytes()[..]);
        // Chunking does not change the bytes.
        prop_assert_eq!(&sealed, &seal(&plain, nonce, &[usize::MAX]));
        let (out, result) = open_push(&sealed, &dec_chunks);
        prop_assert_eq!(result, Ok(()));
        prop_assert_eq!(out, plain);
    }

    #[test]
    fn read_adapters_round_trip(
        size in plain_size(),
        seed in any::<u64>(),
        nonce in nonce(),
        source_pieces in prop::collection::vec(1..2 * B, 1..5),
        read_sizes in chunk_sizes(),
    ) {
        let plain = bytes(size, seed);
        let expected = seal(&plain, nonce, &[usize::MAX]);
        let (sealed, result) = read_all(
            cipher().encrypt_reader(choppy(&plain, source_pieces.clone()), nonce),
            &read_sizes,
        );
        prop_assert!(result.is_ok());
        prop_assert_eq!(&sealed, &expected);
        let (out, result) = read_all(
            cipher().decrypt_reader(choppy(&sealed, source_pieces)),
            &read_sizes,
        );
        prop_assert!(result.is_ok());
        prop_assert_eq!(out, plain);
    }

    #[test]
    fn any_flipped_byte_is_detected(
        size in 1..=2 * B + 50,
        seed in any::<u64>(),
        nonce in nonce(),
        position in any::<prop::sample::Index>(),
        flip in 1..=255u8,
        read_sizes in chunk_sizes(),
    ) {
        let plain = bytes(size, seed);
        let mut sealed = seal(&plain, nonce, &[usize::MAX]);
        let at = position.index(sealed.len());
        sealed[at] ^= flip;
        let first_bad_block = at.saturating_sub(HEADER_SIZE) / BLOCK_SIZE;

        let (out, result) = open_push(&sealed, &[usize::MAX]);
        let err = result.expect_err("tampering must be detected");
        match at {
            0..8 => prop_assert_eq!(&err, &CryptError::BadMagic),
            // A changed nonce breaks block 0.
            8..32 => prop_assert_eq!(&err, &CryptError::CorruptBlock { block: 0 }),
            _ => prop_assert_eq!(&err, &CryptError::CorruptBlock { block: first_bad_block as u64 }),
        }
        // Only the blocks before the bad one came out, and they are right.
        let good = if at < HEADER_SIZE { 0 } else { first_bad_block * B };
        prop_assert_eq!(&out[..], &plain[..good]);

        let (out, result) = read_all(cipher().decrypt_reader(&sealed[..]), &read_sizes);
        let io_err = result.expect_err("tampering must be detected");
        prop_assert_eq!(io_err.kind(), ErrorKind::InvalidData);
        prop_assert_eq!(crypt_error(&io_err), err);
        prop_assert_eq!(&out[..], &plain[..good]);
    }

    #[test]
    fn truncation_is_detected_except_at_block_boundaries(
        size in 0..=3 * B + 50,
        seed in any::<u64>(),
        nonce in nonce(),
        cut in any::<prop::sample::Index>(),
    ) {
        let plain = bytes(size, seed);
        let sealed = seal(&plain, nonce, &[usize::MAX]);
        let keep = cut.index(sealed.len());
        let cut_file = &sealed[..keep];
        let (out, result) = open_push(cut_file, &[usize::MAX]);
        let (read_out, read_result) = read_all(cipher().decrypt_reader(cut_file), &[4096]);
        prop_assert_eq!(&out, &read_out);
        if keep >= HEADER_SIZE && (keep - HEADER_SIZE).is_multiple_of(BLOCK_SIZE) {
            // The format has no file-level MAC: dropping whole trailing blocks (or all of
            // them) leaves a valid, shorter file. The size check catches it.
            prop_assert_eq!(result, Ok(()));
            prop_assert!(read_result.is_ok());
            prop_assert_eq!(&out[..], &plain[..(keep - HEADER_SIZE) / BLOCK_SIZE * B]);
            prop_assert_ne!(decrypted_size(keep as u64), Ok(size as u64));
        } else {
            let err = result.expect_err("truncation must be detected");
            let expected_ok = |e: &CryptError| match e {
                CryptError::TooShort => keep < HEADER_SIZE,
                CryptError::TruncatedBlock { .. } => (keep - HEADER_SIZE) % BLOCK_SIZE <= 16,
                CryptError::CorruptBlock { .. } => (keep - HEADER_SIZE) % BLOCK_SIZE > 16,
                _ => false,
            };
            prop_assert!(expected_ok(&err), "{:?} at {}", err, keep);
            prop_assert_eq!(crypt_error(&read_result.expect_err("detected")), err);
            prop_assert!(plain.starts_with(&out));
        }
    }

    #[test]
    fn ranged_reads_start_at_any_offset(
        size in 1..=3 * B + 50,
        seed in any::<u64>(),
        nonce in nonce(),
        offset in any::<prop::sample::Index>(),
    ) {
        let plain = bytes(size, seed);
        let sealed = seal(&plain, nonce, &[usize::MAX]);
        let offset = offset.index(size);
        let pos = block_position(offset as u64);
        let start = usize::try_from(pos.encrypted_offset).unwrap();
        let header_nonce = cloudsyncd::crypt::parse_header(&sealed).unwrap();

        let mut dec = Decryptor::starting_at_block(cipher().content(), header_nonce, pos.block);
        let mut out = Vec::new();
        dec.update(&sealed[start..], &mut out).unwrap();
        dec.finish(&mut out).unwrap();
        prop_assert_eq!(&out[pos.skip..], &plain[offset..]);

        let reader = DecryptReader::starting_at_block(
            &sealed[start..],
            cipher().content(),
            header_nonce,
            pos.block,
        );
        let (out, result) = read_all(reader, &[1000]);
        prop_assert!(result.is_ok());
        prop_assert_eq!(&out[pos.skip..], &plain[offset..]);
    }

    #[test]
    fn nonce_counter_is_a_192_bit_little_endian_add(
        start in nonce(),
        a in any::<u64>(),
        b in any::<u64>(),
    ) {
        // Reference: three u64 limbs, little-endian, wrapping at 2^192.
        let limbs = |n: &Nonce| -> [u64; 3] {
            let bytes = n.as_bytes();
            [0, 1, 2].map(|i| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap()))
        };
        let add = |l: [u64; 3], x: u64| -> [u64; 3] {
            let (l0, c0) = l[0].overflowing_add(x);
            let (l1, c1) = l[1].overflowing_add(u64::from(c0));
            let l2 = l[2].wrapping_add(u64::from(c1));
            [l0, l1, l2]
        };
        prop_assert_eq!(limbs(&start.for_block(a)), add(limbs(&start), a));
        prop_assert_eq!(
            start.for_block(a).for_block(b),
            Nonce::from_bytes({
                let l = add(add(limbs(&start), a), b);
                let mut out = [0u8; 24];
                for (i, limb) in l.iter().enumerate() {
                    out[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
                }
                out
            })
        );
    }

    #[test]
    fn impossible_sizes_are_refused(size in 0..10 * BLOCK_SIZE as u64) {
        let body = size.checked_sub(HEADER_SIZE as u64);
        let possible = body.is_some_and(|b| {
            let r = b % BLOCK_SIZE as u64;
            r == 0 || r > 16
        });
        match decrypted_size(size) {
            Ok(plain) => {
                prop_assert!(possible);
                prop_assert_eq!(encrypted_size(plain), size);
            }
            Err(CryptError::ImpossibleSize { size: s, .. }) => {
                prop_assert!(!possible);
                prop_assert_eq!(s, size);
            }
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn names_round_trip_in_every_mode(
        segments in prop::collection::vec("[^/]{0,40}", 1..5),
        mode in prop::sample::select(vec![
            (NameEncryption::Standard, NameEncoding::Base32, true),
            (NameEncryption::Standard, NameEncoding::Base32, false),
            (NameEncryption::Standard, NameEncoding::Base64, true),
            (NameEncryption::Standard, NameEncoding::Base32768, true),
            (NameEncryption::Obfuscate, NameEncoding::Base32, true),
            (NameEncryption::Off, NameEncoding::Base32, true),
        ]),
    ) {
        let path = segments.join("/");
        prop_assume!(!path.is_empty());
        let options = NameOptions {
            encryption: mode.0,
            encoding: mode.1,
            directory_name_encryption: mode.2,
            ..NameOptions::default()
        };
        let names = Cipher::new(cipher().keys().clone(), options);
        let names = names.names();
        let enc = names.encrypt_file_name(&path).unwrap();
        prop_assert_eq!(names.decrypt_file_name(&enc).unwrap(), path.as_str());
        let enc_dir = names.encrypt_dir_name(&path).unwrap();
        prop_assert_eq!(names.decrypt_dir_name(&enc_dir).unwrap(), path);
        prop_assert_eq!(enc.split('/').count(), segments.len());
        if mode.0 == NameEncryption::Standard && mode.2 {
            for (plain, cipher_text) in segments.iter().zip(enc.split('/')) {
                let want = if plain.is_empty() { 0 } else { encrypted_segment_len(mode.1, plain.len()) };
                prop_assert_eq!(cipher_text.chars().count(), want);
            }
        }
    }

    #[test]
    fn length_check_agrees_with_the_formula(len in 0..400usize) {
        let segment = "y".repeat(len);
        let result = cipher().names().check_name_lengths(&format!("dir/{segment}"));
        if encrypted_segment_len(NameEncoding::Base32, len) <= 255 || len == 0 {
            prop_assert!(result.is_ok());
        } else {
            let is_too_long = matches!(result, Err(CryptError::NameTooLong { .. }));
            prop_assert!(is_too_long);
        }
        prop_assert_eq!(len <= 143, encrypted_segment_len(NameEncoding::Base32, len) <= 255);
    }
}

#[test]
fn every_byte_of_a_small_file_is_protected() {
    let plain = bytes(1000, 11);
    let sealed = seal(&plain, Nonce::from_bytes([1; 24]), &[usize::MAX]);
    for at in 0..sealed.len() {
        for flip in [0x01, 0x80] {
            let mut bad = sealed.clone();
            bad[at] ^= flip;
            let (out, result) = open_push(&bad, &[usize::MAX]);
            assert!(result.is_err(), "flip at {at} not detected");
            assert!(out.is_empty());
        }
    }
}

#[test]
fn headers_and_tags_of_every_block_are_protected() {
    let plain = bytes(2 * B + 100, 12);
    let sealed = seal(&plain, Nonce::from_bytes([0xfe; 24]), &[usize::MAX]);
    let mut positions: Vec<usize> = (0..HEADER_SIZE).collect();
    for block in 0..3 {
        let start = HEADER_SIZE + block * BLOCK_SIZE;
        let end = (start + BLOCK_SIZE).min(sealed.len());
        positions.extend(start..start + 17);
        positions.push(end - 1);
    }
    for at in positions {
        let mut bad = sealed.clone();
        bad[at] ^= 0x10;
        let (out, result) = open_push(&bad, &[usize::MAX]);
        assert!(result.is_err(), "flip at {at} not detected");
        let good = if at < HEADER_SIZE { 0 } else { (at - HEADER_SIZE) / BLOCK_SIZE * B };
        assert_eq!(out, plain[..good], "flip at {at}");
    }
}

#[test]
fn truncation_next_to_every_boundary() {
    let plain = bytes(3 * B + 40, 13);
    let sealed = seal(&plain, Nonce::from_bytes([2; 24]), &[usize::MAX]);
    let mut cuts: Vec<usize> = (0..=HEADER_SIZE + 17).collect();
    for block in 1..=3 {
        let boundary = HEADER_SIZE + block * BLOCK_SIZE;
        cuts.extend([boundary - 1, boundary, boundary + 1, boundary + 16, boundary + 17]);
    }
    cuts.push(sealed.len() - 1);
    for keep in cuts {
        let (out, result) = open_push(&sealed[..keep], &[usize::MAX]);
        let on_boundary = keep >= HEADER_SIZE && (keep - HEADER_SIZE).is_multiple_of(BLOCK_SIZE);
        match result {
            Ok(()) => {
                assert!(on_boundary, "cut at {keep} not detected");
                assert_eq!(out, plain[..(keep - HEADER_SIZE) / BLOCK_SIZE * B]);
            }
            Err(CryptError::TooShort) => assert!(keep < HEADER_SIZE),
            Err(CryptError::TruncatedBlock { len, .. }) => {
                assert_eq!(len, (keep - HEADER_SIZE) % BLOCK_SIZE);
                assert!((1..=16).contains(&len));
            }
            Err(CryptError::CorruptBlock { block }) => {
                assert_eq!(usize::try_from(block).unwrap(), (keep - HEADER_SIZE) / BLOCK_SIZE);
            }
            Err(other) => panic!("cut at {keep}: {other:?}"),
        }
    }
}

#[test]
fn empty_file_is_exactly_the_header() {
    let nonce = Nonce::from_bytes([3; 24]);
    let sealed = seal(b"", nonce, &[1]);
    assert_eq!(sealed.len(), HEADER_SIZE);
    let (out, result) = open_push(&sealed, &[1]);
    assert_eq!((out.len(), result), (0, Ok(())));
    let (out, result) = open_push(b"", &[1]);
    assert_eq!((out.len(), result), (0, Err(CryptError::TooShort)));
}

#[test]
fn inner_io_errors_pass_through_and_reading_resumes() {
    /// Fails once, with a real error, in the middle of the data.
    struct FailsOnce<'a> {
        data: &'a [u8],
        failed: bool,
    }
    impl Read for FailsOnce<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !self.failed && self.data.len() < 100_000 {
                self.failed = true;
                return Err(io::Error::other("network hiccup"));
            }
            let n = buf.len().min(self.data.len()).min(30_000);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }
    let plain = bytes(3 * B + 7, 42);
    let nonce = Nonce::from_bytes([9; 24]);
    let sealed = seal(&plain, nonce, &[usize::MAX]);

    let mut reader = cipher().encrypt_reader(FailsOnce { data: &plain, failed: false }, nonce);
    let mut out = Vec::new();
    let err = reader.read_to_end(&mut out).unwrap_err();
    assert_eq!(err.to_string(), "network hiccup");
    reader.read_to_end(&mut out).unwrap();
    assert_eq!(out, sealed);

    let mut reader = cipher().decrypt_reader(FailsOnce { data: &sealed, failed: false });
    let mut out = Vec::new();
    let err = reader.read_to_end(&mut out).unwrap_err();
    assert_eq!(err.to_string(), "network hiccup");
    reader.read_to_end(&mut out).unwrap();
    assert_eq!(out, plain);
}

#[test]
fn errors_stick_and_wrong_password_says_so() {
    let plain = bytes(2 * B + 1, 7);
    let sealed = seal(&plain, Nonce::from_bytes([5; 24]), &[usize::MAX]);
    let other = Cipher::from_password("not the password", "pepper", NameOptions::default());
    let mut dec = other.decryptor();
    let mut out = Vec::new();
    let err = dec.update(&sealed, &mut out).unwrap_err();
    assert_eq!(err, CryptError::CorruptBlock { block: 0 });
    assert!(err.to_string().contains("wrong password or corrupted data"));
    assert_eq!(dec.update(b"more", &mut out), Err(err.clone()));
    assert_eq!(dec.finish(&mut out), Err(err));
    assert!(out.is_empty());

    let mut reader = other.decrypt_reader(&sealed[..]);
    let mut buf = [0u8; 10];
    let first = reader.read(&mut buf).unwrap_err();
    let second = reader.read(&mut buf).unwrap_err();
    assert_eq!(crypt_error(&first), crypt_error(&second));
}

#[test]
fn random_nonces_differ() {
    let a = cipher().encryptor_random().unwrap().nonce();
    let b = cipher().encryptor_random().unwrap().nonce();
    assert_ne!(a, b);
    let mut sealed = Vec::new();
    cipher().encrypt_reader_random(&b"abc"[..]).unwrap().read_to_end(&mut sealed).unwrap();
    let (out, result) = open_push(&sealed, &[2]);
    assert_eq!((out.as_slice(), result), (&b"abc"[..], Ok(())));
}
