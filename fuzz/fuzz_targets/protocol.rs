//! The device side of the serial protocol on an arbitrary byte stream: one decodable
//! answer per frame, no panic, and a correct answer to the next valid request.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mlp_fuzz::protocol::check_protocol_stream(data));
