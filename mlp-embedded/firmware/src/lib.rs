//! What every firmware binary here shares: the embedded test images, the prediction
//! loop, exiting QEMU with a status, fault and panic handlers that exit with failure,
//! stack painting, and the benchmark markers.
//!
//! Output (semihosting), one line per image, logits as the hex bits of each `f32` so
//! the host can compare them exactly:
//!
//! ```text
//! image 0 class 7 expected 7 logits c0a1b2c3 ...
//! dense class 3 logits ...
//! stack peak 6144 bytes
//! result: 100/100 match
//! ```
//!
//! The int8 binaries ([`run_int8`]) print the same lines with the int32 logits in hex
//! (`image 0 class 7 expected 7 logits 0001a2b3 fffe0c11 ...`) and start with `int8
//! model ...`.
#![no_std]

pub use cortex_m_semihosting::{hprint, hprintln};
use mlp_embedded::{Int8Model, Int8Scratch, Model, Scratch};

/// What the firmware was built for (written by `build.rs` from `MLP_LAYERS` and the
/// staged assets).
pub mod config {
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}

use config::{IMAGE_COUNT, INPUTS, INT8_IMAGE_COUNT, LAYER_SIZES, OUTPUTS, WIDTH};

/// Bytes kept at a 4-byte aligned address, so a model's `f32` payload can be read in place.
#[repr(C, align(4))]
pub struct Aligned<T: ?Sized>(pub T);

/// The test images, `IMAGE_COUNT × INPUTS` bytes, one byte per pixel.
pub static IMAGES: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/images.bin")));

/// The class the host predicts for each image.
pub static EXPECTED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/expected.bin"));

/// The test images of the int8 binaries, `INT8_IMAGE_COUNT × INPUTS` bytes.
pub static INT8_IMAGES: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    env!("OUT_DIR"),
    "/int8-images.bin"
)));

/// The class the host's integer kernels predict for each int8 test image.
pub static INT8_EXPECTED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/int8-expected.bin"));

/// The model type this firmware runs.
pub type FirmwareModel = Model<'static, INPUTS, OUTPUTS, WIDTH>;

/// The int8 model type this firmware runs.
pub type FirmwareInt8Model = Int8Model<'static, INPUTS, OUTPUTS, WIDTH>;

/// Ends the program: QEMU exits with status 0 if `success`, 1 otherwise (semihosting
/// `SYS_EXIT`). On a real board with a debugger attached, the probe sees the same.
pub fn exit(success: bool) -> ! {
    let status = if success {
        cortex_m_semihosting::debug::EXIT_SUCCESS
    } else {
        cortex_m_semihosting::debug::EXIT_FAILURE
    };
    loop {
        cortex_m_semihosting::debug::exit(status);
    }
}

/// Called right before an inference: the instruction-count plugin starts counting here.
#[no_mangle]
#[inline(never)]
pub extern "C" fn bench_marker_start() {
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    cortex_m::asm::nop();
}

/// Called right after an inference: the plugin prints the count since the start marker.
/// Its body differs from [`bench_marker_start`]'s so the linker cannot fold the two.
#[no_mangle]
#[inline(never)]
pub extern "C" fn bench_marker_stop() {
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    cortex_m::asm::nop();
    cortex_m::asm::nop();
}

/// Peak stack measurement by painting: fill the free stack with a pattern at start,
/// later find the lowest word that was overwritten.
pub mod stack {
    const PATTERN: u32 = 0x5AA5_C33C;

    extern "C" {
        // cortex-m-rt: start of the free RAM after .data/.bss/.uninit, and top of the stack.
        static mut __sheap: u32;
        static mut _stack_start: u32;
    }

    fn bottom() -> *mut u32 {
        &raw mut __sheap
    }

    fn top() -> *mut u32 {
        &raw mut _stack_start
    }

    /// Paints the stack below the current stack pointer (minus a small margin).
    #[inline(never)]
    pub fn paint() {
        let sp = cortex_m::register::msp::read() as usize;
        let limit = sp.saturating_sub(64) as *mut u32;
        let mut word = bottom();
        while word < limit {
            // SAFETY: the words between the end of .bss and the stack pointer (less a
            // margin for this function's own frame) are free RAM nothing else uses.
            unsafe {
                word.write_volatile(PATTERN);
                word = word.add(1);
            }
        }
    }

    /// Bytes of stack used at the deepest point since [`paint`].
    pub fn peak_bytes() -> usize {
        let mut word = bottom();
        // SAFETY: reads only painted free RAM between the end of .bss and the top of
        // the stack; volatile, since the compiler cannot know other code wrote it.
        while word < top() && unsafe { word.read_volatile() } == PATTERN {
            // SAFETY: stays within the same RAM region (checked against `top` above).
            word = unsafe { word.add(1) };
        }
        top() as usize - word as usize
    }

    /// Bytes between the end of .bss and the top of the stack (the space the stack may use).
    pub fn capacity_bytes() -> usize {
        top() as usize - bottom() as usize
    }
}

/// A worst case for the zero-skipping kernel: 784 pixels, none zero.
fn dense_pixels() -> [u8; INPUTS] {
    let mut pixels = [0u8; INPUTS];
    for (k, pixel) in pixels.iter_mut().enumerate() {
        *pixel = (k % 255) as u8 + 1;
    }
    pixels
}

/// Prints the logits as the hexadecimal bits the host test compares.
fn print_logits(bits: &[u32; OUTPUTS]) {
    hprint!(" logits");
    for word in bits {
        hprint!(" {:08x}", word);
    }
    hprintln!();
}

/// Loads `model_bytes`, predicts every embedded image and a dense input, prints each
/// result, and exits with success only if every class equals the expected one.
pub fn run(model_bytes: &'static [u8]) -> ! {
    stack::paint();
    let model = match FirmwareModel::load_expecting(model_bytes, &LAYER_SIZES) {
        Ok(model) => model,
        Err(error) => {
            hprintln!("load error: {}", error);
            exit(false)
        }
    };
    let needs = model.memory_needs();
    hprint!("model");
    for size in model.layer_sizes() {
        hprint!(" {}", size);
    }
    hprintln!(
        " at {:#010x}: {} bytes of flash, {} bytes of activations, {} MACs",
        model_bytes.as_ptr() as usize,
        needs.flash_model_bytes,
        needs.ram_activation_bytes,
        needs.macs
    );
    let mut scratch = Scratch::new();
    predict_and_report(
        &IMAGES.0,
        EXPECTED,
        IMAGE_COUNT,
        |image| model.predict_pixels(image, &mut scratch),
        |prediction| (prediction.class, prediction.logits.map(f32::to_bits)),
    )
}

/// Loads the int8 model `model_bytes`, predicts every embedded int8 test image and a
/// dense input, prints each result with its int32 logits, and exits with success only
/// if every class equals the host's.
pub fn run_int8(model_bytes: &'static [u8]) -> ! {
    stack::paint();
    let model = match FirmwareInt8Model::load_expecting(model_bytes, &LAYER_SIZES) {
        Ok(model) => model,
        Err(error) => {
            hprintln!("load error: {}", error);
            exit(false)
        }
    };
    let needs = model.memory_needs();
    hprint!("int8 model");
    for size in model.layer_sizes() {
        hprint!(" {}", size);
    }
    hprintln!(
        " at {:#010x}: {} bytes of flash, {} bytes of activations and accumulators, {} MACs",
        model_bytes.as_ptr() as usize,
        needs.flash_model_bytes,
        needs.ram_activation_bytes,
        needs.macs
    );
    let mut scratch = Int8Scratch::new();
    predict_and_report(
        &INT8_IMAGES.0,
        INT8_EXPECTED,
        INT8_IMAGE_COUNT,
        |image| model.predict_pixels(image, &mut scratch),
        // The logits' two's-complement bits, as the host test reads them.
        |prediction| (prediction.class, prediction.logits.map(|l| l as u32)),
    )
}

/// Predicts every image of `images` and then a dense input with `predict` (between the
/// benchmark markers, so only inference is counted), prints each class with its logits'
/// bits (from `class_and_bits`), the stack peak and the match count, and exits with
/// success only if all `count` classes equal `expected`.
fn predict_and_report<P>(
    images: &[u8],
    expected: &[u8],
    count: usize,
    mut predict: impl FnMut(&[u8; INPUTS]) -> P,
    class_and_bits: impl Fn(&P) -> (usize, [u32; OUTPUTS]),
) -> ! {
    let mut matches = 0;
    for (index, (image, &want)) in images
        .as_chunks::<INPUTS>()
        .0
        .iter()
        .zip(expected)
        .enumerate()
    {
        bench_marker_start();
        let prediction = predict(image);
        bench_marker_stop();
        let (class, bits) = class_and_bits(&prediction);
        hprint!(
            "image {} class {} expected {}",
            index,
            class,
            usize::from(want)
        );
        print_logits(&bits);
        matches += usize::from(class == usize::from(want));
    }
    let dense = dense_pixels();
    bench_marker_start();
    let prediction = predict(&dense);
    bench_marker_stop();
    let (class, bits) = class_and_bits(&prediction);
    hprint!("dense class {}", class);
    print_logits(&bits);
    hprintln!(
        "stack peak {} bytes of {}",
        stack::peak_bytes(),
        stack::capacity_bytes()
    );
    hprintln!("result: {}/{} match", matches, count);
    exit(matches == count && count > 0)
}

/// Little-endian `f32` feature vectors, as the `predict_features` binary embeds them.
pub static TABULAR_FEATURES: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    env!("OUT_DIR"),
    "/tabular-features.bin"
)));

/// Loads the tabular f32 and int8 models (format version 3: a stored input
/// transform), prints their layer sizes and MACs (`tabular model 32 64 32 4: 4224 MACs,
/// ...`), predicts every embedded feature vector with each through `predict_features`,
/// and prints every logit's bits (`features 0 class 2 logits ...`, then `int8 features
/// 0 class 2 logits ...`, the int32 logits' two's-complement bits) for the host to
/// compare. Each prediction runs between the benchmark markers, so an instruction
/// count precedes the line of the prediction it measured and that line's prefix says
/// which model it was. Exits with success when both models loaded and every vector was
/// predicted.
pub fn run_features(f32_model: &'static [u8], int8_model: &'static [u8]) -> ! {
    use config::{TABULAR_INPUTS, TABULAR_LAYER_SIZES, TABULAR_OUTPUTS, TABULAR_WIDTH};
    let model = match Model::<TABULAR_INPUTS, TABULAR_OUTPUTS, TABULAR_WIDTH>::load_expecting(
        f32_model,
        &TABULAR_LAYER_SIZES,
    ) {
        Ok(model) => model,
        Err(error) => {
            hprintln!("load error: {}", error);
            exit(false)
        }
    };
    let int8 = match Int8Model::<TABULAR_INPUTS, TABULAR_OUTPUTS, TABULAR_WIDTH>::load_expecting(
        int8_model,
        &TABULAR_LAYER_SIZES,
    ) {
        Ok(model) => model,
        Err(error) => {
            hprintln!("int8 load error: {}", error);
            exit(false)
        }
    };
    hprint!("tabular model");
    for size in model.layer_sizes() {
        hprint!(" {}", size);
    }
    hprintln!(
        ": {} MACs, {} features, input {}; int8 input {}",
        model.memory_needs().macs,
        TABULAR_INPUTS,
        model.input_kind().name(),
        int8.input_kind().name()
    );
    let (mut scratch, mut int8_scratch) = (Scratch::new(), Int8Scratch::new());
    let vectors = TABULAR_FEATURES.0.chunks_exact(4 * TABULAR_INPUTS);
    let count = vectors.len();
    for (index, bytes) in vectors.enumerate() {
        let mut features = [0.0f32; TABULAR_INPUTS];
        for (value, word) in features.iter_mut().zip(bytes.chunks_exact(4)) {
            *value = f32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        }
        bench_marker_start();
        let prediction = model.predict_features(&features, &mut scratch);
        bench_marker_stop();
        hprint!("features {} class {} logits", index, prediction.class);
        for logit in prediction.logits {
            hprint!(" {:08x}", logit.to_bits());
        }
        hprintln!();
        bench_marker_start();
        let prediction = int8.predict_features(&features, &mut int8_scratch);
        bench_marker_stop();
        hprint!("int8 features {} class {} logits", index, prediction.class);
        for logit in prediction.logits {
            hprint!(" {:08x}", logit as u32);
        }
        hprintln!();
    }
    hprintln!("result: {} feature vectors", count);
    exit(count > 0)
}

/// Defines the panic handler and the HardFault handler: both print what happened over
/// semihosting and exit with failure (cortex-m-rt's default HardFault loops forever).
#[macro_export]
macro_rules! handlers {
    () => {
        #[panic_handler]
        fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
            $crate::hprintln!("panic: {}", info);
            $crate::exit(false)
        }

        #[cortex_m_rt::exception]
        unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
            $crate::hprintln!("hardfault: pc={:#010x}", frame.pc());
            $crate::exit(false)
        }
    };
}
