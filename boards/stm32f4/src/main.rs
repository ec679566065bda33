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
use mlp_board_common::SerialLink;
use mlp_embedded::protocol::{request_frame_len, Identity};
use stm32f4::stm32f405 as pac;

// The models this firmware serves, `INPUTS`, `CLASSES` and `WIDTH`, from `MLP_LAYERS`
// when it is built (build.rs): by default 784 pixel inputs (28×28), 10 classes, layers
// up to 256 wide. `board info` reports a model of another shape as missing, with the
// reason.
include!(concat!(env!("OUT_DIR"), "/shape.rs"));

/// The longest request: `INPUTS` `f32` features (a pixel request is shorter).
const RX: usize = request_frame_len(4 * INPUTS) - 1;

/// USART1 runs from APB2, which runs at the 16 MHz reset clock: 16 MHz / 115200 =
/// 138.9, written as mantissa 8, fraction 11 (16 × 8 + 11 = 139, 0.1% fast).
const BRR_115200_AT_16MHZ: u16 = (8 << 4) | 11;

const IDENTITY: Identity<'static> = Identity {
    firmware: concat!("mlp-board-stm32f4 ", env!("CARGO_PKG_VERSION")),
    board: "stm32f4",
};

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

    mlp_board_common::serve::<INPUTS, CLASSES, WIDTH, RX>(
        IDENTITY,
        Some(cycles),
        &mut Usart1(device.USART1),
    )
}

/// USART1, enabled.
struct Usart1(pac::USART1);

impl SerialLink for Usart1 {
    fn read(&mut self) -> u8 {
        // Reading DR after SR clears an overrun too.
        mlp_board_common::wait_until(|| self.0.sr().read().rxne().bit_is_set());
        self.0.dr().read().dr().bits() as u8
    }

    fn write(&mut self, frame: &[u8]) {
        for &out in frame {
            mlp_board_common::wait_until(|| self.0.sr().read().txe().bit_is_set());
            // SAFETY: DR takes any 9-bit value; a byte is one.
            self.0
                .dr()
                .write(|w| unsafe { w.dr().bits(u16::from(out)) });
        }
    }
}

/// A panic cannot happen in the protocol's code (`mlp-embedded` is tested not to
/// panic); if one did, the board restarts and serves again rather than hanging.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    SCB::sys_reset()
}
