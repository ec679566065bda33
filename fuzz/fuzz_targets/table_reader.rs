//! The trainer's CSV reader (`mlp_data::table`) on arbitrary bytes: no panic, errors
//! name the file, and what is read reads the same as a test file and when written out.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mlp_fuzz::check_table(data);
});
