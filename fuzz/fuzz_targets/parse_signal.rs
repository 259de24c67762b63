//! `husk::lifecycle::parse_signal`: never panics; an accepted signal is a
//! real signal number (1..=64); names are case-insensitive with or without
//! the `SIG` prefix.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let got = husk::lifecycle::parse_signal(Some(s));
    if let Ok(n) = got {
        assert!((1..=64).contains(&n), "parse_signal({s:?}) = {n}");
    }
    if s.parse::<i64>().is_err() {
        let lower = husk::lifecycle::parse_signal(Some(&s.to_ascii_lowercase())).ok();
        let upper = husk::lifecycle::parse_signal(Some(&s.to_ascii_uppercase())).ok();
        assert_eq!(lower, upper, "case matters for {s:?}");
        assert_eq!(got.as_ref().ok().copied(), upper, "case matters for {s:?}");
        if let Ok(n) = got {
            let bare = s.to_ascii_uppercase();
            let bare = bare.strip_prefix("SIG").unwrap_or(&bare);
            if !bare.is_empty() {
                assert_eq!(husk::lifecycle::parse_signal(Some(bare)).ok(), Some(n), "{s:?}");
            }
        }
    }
});
