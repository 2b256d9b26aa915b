//! The cron parser on arbitrary text, and next-run times of what parses (in a DST zone).
#![no_main]

use cloudsyncd::schedule::Schedule;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(sched) = Schedule::parse(s) {
        let tz = jiff::tz::TimeZone::get("America/New_York").unwrap_or(jiff::tz::TimeZone::UTC);
        let mut t = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        for _ in 0..3 {
            match sched.next_after(t, &tz) {
                Some(n) => {
                    assert!(n > t);
                    t = n;
                }
                None => break,
            }
        }
        let again = Schedule::parse(&sched.to_string()).expect("the normalised form parses");
        assert_eq!(again, sched);
    }
});
