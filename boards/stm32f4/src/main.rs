//! Firmware for STM32F405/F407 boards: serves the serial protocol (`docs/PROTOCOL.md`)
//! on USART1 (PA9 transmits, PA10 receives, 115200 baud, 8N1) with the model flashed at
//! the start of the `MODEL` region of `memory.x`, `f32` or int8.
//!
//! It runs on the chip's reset clock (the 16 MHz internal oscillator) and waits for no
//! clock to become ready: QEMU's `netduinoplus2` does not model the clock controller,
//! so the same binary runs there and on the chip. Inference at 16 MHz is slower than
//! the chip can go (168 MHz with the PLL); see this board's README.
#![no_std]
#![no_main]

use cortex_m::peripheral::{DWT, SCB};
use cortex_m_rt::entry;
use defmt_rtt as _;
use mlp_embedded::protocol::{
    request_frame_len, AnyClassifier, Identity, Server, MAX_RESPONSE_FRAME,
};
use stm32f4::stm32f405 as pac;

/// The models this firmware serves: 784 pixel inputs (28×28), 10 classes, layers up to
/// 256 wide; `board info` reports a model of another shape as missing, with the reason.
type Classifier = AnyClassifier<'static, 784, 10, 256>;

/// The longest request: 784 `f32` features (a pixel request is shorter).
const RX: usize = request_frame_len(4 * 784) - 1;

/// USART1 runs from APB2, which runs at the 16 MHz reset clock: 16 MHz / 115200 =
/// 138.9, written as mantissa 8, fraction 11 (16 × 8 + 11 = 139, 0.1% fast).
const BRR_115200_AT_16MHZ: u16 = (8 << 4) | 11;

const IDENTITY: Identity<'static> = Identity {
    firmware: concat!("mlp-board-stm32f4 ", env!("CARGO_PKG_VERSION")),
    board: "stm32f4",
};

extern "C" {
    // Defined in memory.x.
    static _model_region_start: u8;
    static _model_region_end: u8;
}

fn model_region() -> &'static [u8] {
    let start = &raw const _model_region_start;
    let len = &raw const _model_region_end as usize - start as usize;
    // SAFETY: memory.x reserves this flash region for the model; nothing in the program
    // writes flash, so it is valid, immutable memory for the whole run.
    unsafe { core::slice::from_raw_parts(start, len) }
}

fn cycles() -> u32 {
    DWT::cycle_count()
}

#[entry]
fn main() -> ! {
    let (Some(device), Some(mut core)) = (pac::Peripherals::take(), cortex_m::Peripherals::take())
    else {
        SCB::sys_reset()
    };
    // The cycle counter, for the answers' `cycles` (QEMU reads it as 0: not measured).
    core.DCB.enable_trace();
    core.DWT.enable_cycle_counter();

    // USART1 on PA9 (TX) and PA10 (RX), alternate function 7.
    device.RCC.ahb1enr().modify(|_, w| w.gpioaen().enabled());
    device.RCC.apb2enr().modify(|_, w| w.usart1en().enabled());
    let gpioa = &device.GPIOA;
    gpioa
        .moder()
        .modify(|_, w| w.moder9().alternate().moder10().alternate());
    gpioa.afrh().modify(|_, w| w.afrh9().af7().afrh10().af7());
    let usart = &device.USART1;
    // SAFETY: any 16-bit value is a valid baud rate divisor; this one is computed above.
    usart
        .brr()
        .write(|w| unsafe { w.bits(BRR_115200_AT_16MHZ) });
    usart
        .cr1()
        .write(|w| w.ue().enabled().te().enabled().re().enabled());

    let model = mlp_embedded::model_in_region(model_region()).and_then(Classifier::load);
    match &model {
        Ok(model) => {
            let summary = mlp_embedded::protocol::Classifier::summary(model);
            defmt::info!(
                "{=str}: serving a model of layer sizes {=[?]}, payload CRC-32 {=u32:08x}",
                IDENTITY.firmware,
                summary.layer_sizes.as_slice(),
                summary.payload_crc
            );
        }
        Err(_) => defmt::warn!(
            "{=str}: no valid model in the model region (`board info` says why)",
            IDENTITY.firmware
        ),
    }
    let mut server = Server::<RX, Classifier>::new(IDENTITY, model, Some(cycles));
    let (mut body, mut frame) = ([0; MAX_RESPONSE_FRAME], [0; MAX_RESPONSE_FRAME]);
    loop {
        // Reading DR after SR clears an overrun too: a lost byte shows as a damaged
        // frame, which the protocol answers as such.
        while usart.sr().read().rxne().bit_is_clear() {}
        let byte = usart.dr().read().dr().bits() as u8;
        if let Some(reply) = server.receive(byte, &mut body, &mut frame) {
            for &out in reply {
                while usart.sr().read().txe().bit_is_clear() {}
                // SAFETY: DR takes any 9-bit value; a byte is one.
                usart.dr().write(|w| unsafe { w.dr().bits(u16::from(out)) });
            }
        }
    }
}

/// A panic cannot happen in the protocol's code (`mlp-embedded` is tested not to
/// panic); if one did, the board restarts and serves again rather than hanging.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    SCB::sys_reset()
}
