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
use mlp_board_common::SerialLink;
use mlp_embedded::protocol::{request_frame_len, Identity};

// The models this firmware serves, `INPUTS`, `CLASSES` and `WIDTH`, from `MLP_LAYERS`
// when it is built (build.rs): by default 784 pixel inputs (28×28), 10 classes, layers
// up to 200 wide (the walkthrough's; 16 KB of RAM sets the width).
include!(concat!(env!("OUT_DIR"), "/shape.rs"));

/// The longest request's payload: `INPUTS` `f32` features when they take no more
/// than an image of 784 pixels does (a tabular model's few features), otherwise one
/// byte per input (784 `f32` features would not fit this RAM: a model of images is
/// sent pixels).
const RX_PAYLOAD: usize = if 4 * INPUTS <= 784 {
    4 * INPUTS
} else {
    INPUTS
};

/// The longest request frame, without its delimiter.
const RX: usize = request_frame_len(RX_PAYLOAD) - 1;

/// UART0's BAUDRATE value for 115200 baud (nRF51 reference manual).
const BAUD_115200: u32 = 0x01D7_E000;
/// The micro:bit's UART pins, wired to its USB interface chip.
const TX_PIN: u32 = 24;
const RX_PIN: u32 = 25;

const IDENTITY: Identity<'static> = Identity {
    firmware: concat!("mlp-board-microbit ", env!("CARGO_PKG_VERSION")),
    board: "microbit",
};

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

    mlp_board_common::serve::<INPUTS, CLASSES, WIDTH, RX>(IDENTITY, None, &mut Uart0(device.UART0))
}

/// UART0, enabled and started in both directions.
struct Uart0(nrf51_pac::UART0);

impl SerialLink for Uart0 {
    fn read(&mut self) -> u8 {
        mlp_board_common::wait_until(|| self.0.events_rxdrdy.read().bits() != 0);
        // SAFETY: clearing an event register is always valid.
        self.0.events_rxdrdy.write(|w| unsafe { w.bits(0) });
        self.0.rxd.read().bits() as u8
    }

    fn write(&mut self, frame: &[u8]) {
        for &out in frame {
            // SAFETY: TXD takes any byte; clearing an event is always valid.
            self.0.txd.write(|w| unsafe { w.bits(u32::from(out)) });
            mlp_board_common::wait_until(|| self.0.events_txdrdy.read().bits() != 0);
            self.0.events_txdrdy.write(|w| unsafe { w.bits(0) });
        }
    }
}

/// A panic cannot happen in the protocol's code (`mlp-embedded` is tested not to
/// panic); if one did, the board restarts and serves again rather than hanging.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    SCB::sys_reset()
}
