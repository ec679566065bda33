//! Firmware for the BBC micro:bit (v1, nRF51822, Cortex-M0): serves the serial
//! protocol (`docs/PROTOCOL.md`) on UART0 — the board's USB serial port, P0.24
//! transmits and P0.25 receives, 115200 baud, 8N1 — with the model flashed at the start
//! of the `MODEL` region of `memory.x`, int8 (or an `f32` model small enough for it).
//!
//! The Cortex-M0 has no cycle counter: answers say "cycles not measured".
#![no_std]
#![no_main]

use cortex_m::peripheral::SCB;
use cortex_m_rt::entry;
use defmt_rtt as _;
use mlp_embedded::protocol::{
    request_frame_len, AnyClassifier, Identity, Server, MAX_RESPONSE_FRAME,
};

/// The models this firmware serves: 784 pixel inputs (28×28), 10 classes, layers up
/// to 200 wide (the walkthrough's); 16 KB of RAM sets the width.
type Classifier = AnyClassifier<'static, 784, 10, 200>;

/// The longest request: an image of 784 pixels (features would not fit this RAM).
const RX: usize = request_frame_len(784) - 1;

/// UART0's BAUDRATE value for 115200 baud (nRF51 reference manual).
const BAUD_115200: u32 = 0x01D7_E000;
/// The micro:bit's UART pins, wired to its USB interface chip.
const TX_PIN: u32 = 24;
const RX_PIN: u32 = 25;

const IDENTITY: Identity<'static> = Identity {
    firmware: concat!("mlp-board-microbit ", env!("CARGO_PKG_VERSION")),
    board: "microbit",
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

#[entry]
fn main() -> ! {
    let Some(device) = nrf51_pac::Peripherals::take() else {
        SCB::sys_reset()
    };
    let uart = &device.UART0;
    // SAFETY: pin numbers 0-31 and the reference manual's baud rate value are valid
    // register contents.
    unsafe {
        uart.pseltxd.write(|w| w.bits(TX_PIN));
        uart.pselrxd.write(|w| w.bits(RX_PIN));
        uart.baudrate.write(|w| w.bits(BAUD_115200));
        uart.enable.write(|w| w.bits(4));
        uart.tasks_starttx.write(|w| w.bits(1));
        uart.tasks_startrx.write(|w| w.bits(1));
    }

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
    let mut server = Server::<RX, Classifier>::new(IDENTITY, model, None);
    let (mut body, mut frame) = ([0; MAX_RESPONSE_FRAME], [0; MAX_RESPONSE_FRAME]);
    loop {
        while uart.events_rxdrdy.read().bits() == 0 {}
        // SAFETY: clearing an event register is always valid.
        uart.events_rxdrdy.write(|w| unsafe { w.bits(0) });
        let byte = uart.rxd.read().bits() as u8;
        if let Some(reply) = server.receive(byte, &mut body, &mut frame) {
            for &out in reply {
                // SAFETY: TXD takes any byte; clearing an event is always valid.
                uart.txd.write(|w| unsafe { w.bits(u32::from(out)) });
                while uart.events_txdrdy.read().bits() == 0 {}
                uart.events_txdrdy.write(|w| unsafe { w.bits(0) });
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
