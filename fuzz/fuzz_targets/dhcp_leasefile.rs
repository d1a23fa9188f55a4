#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| virtgate_fuzzing::dhcp_leasefile(data));
