#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| virtgate_fuzzing::radius_packet(data));
