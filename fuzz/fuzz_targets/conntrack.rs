#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| netvantage_fuzzing::conntrack(data));
