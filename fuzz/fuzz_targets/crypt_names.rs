//! The crypt name decoder (every mode and encoding) on arbitrary names, and round trips.
#![no_main]

use cloudsyncd::crypt::{Keys, NameCipher, NameEncoding, NameEncryption, NameOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let keys = Keys::from_parts([1; 32], [2; 32], [3; 16]);
    for encryption in [NameEncryption::Standard, NameEncryption::Off, NameEncryption::Obfuscate] {
        for encoding in [NameEncoding::Base32, NameEncoding::Base64, NameEncoding::Base32768] {
            let opts = NameOptions { encryption, encoding, ..NameOptions::default() };
            let names = NameCipher::new(&keys, opts);
            let _ = names.decrypt_file_name(s);
            let _ = names.decrypt_segment(s);
            if let Ok(enc) = names.encrypt_file_name(s) {
                if !s.is_empty() && !s.split('/').any(str::is_empty) {
                    assert_eq!(names.decrypt_file_name(&enc).ok().as_deref(), Some(s), "{encryption:?} {encoding:?}");
                }
            }
        }
    }
});
