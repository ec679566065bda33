//! Firmware for the Raspberry Pi Pico (RP2040, Cortex-M0+): serves the serial protocol
//! (`docs/PROTOCOL.md`) on UART0 — GP0 transmits, GP1 receives, 115200 baud, 8N1 —
//! with the model flashed at the start of the `MODEL` region of `memory.x`, `f32` or
//! int8.
//!
//! Clocks: the boot ROM leaves the chip on its ring oscillator (ROSC, nominally 6.5 MHz
//! but far from exact), too loose for a UART. The firmware starts the Pico's 12 MHz
//! crystal oscillator (XOSC) and runs `clk_ref`, `clk_sys` and `clk_peri` (the UART's
//! clock) all from it, at 12 MHz: no PLL. The PL011 UART needs its clock no faster than
//! 5/3 of the bus clock (`clk_sys`), which one clock for both satisfies.
//!
//! The Cortex-M0+ has no cycle counter: answers say "cycles not measured".
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use mlp_board_common::SerialLink;
use mlp_embedded::protocol::{request_frame_len, Identity};
use rp2040_pac as pac;

/// The second-stage bootloader for the Pico's W25Q16JV flash (the W25Q080 one serves
/// the whole W25Q family), placed in the first 256 bytes of flash by `memory.x`.
#[link_section = ".boot2"]
#[used]
pub static BOOT2: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

// The models this firmware serves, `INPUTS`, `CLASSES` and `WIDTH`, from `MLP_LAYERS`
// when it is built (build.rs): by default 784 pixel inputs (28×28), 10 classes, layers
// up to 256 wide. `board info` reports a model of another shape as missing, with the
// reason.
include!(concat!(env!("OUT_DIR"), "/shape.rs"));

/// The longest request: `INPUTS` `f32` features (a pixel request is shorter).
const RX: usize = request_frame_len(4 * INPUTS) - 1;

/// The Pico's crystal, and so `clk_sys` and `clk_peri`.
const XOSC_HZ: u32 = 12_000_000;
/// XOSC start-up wait, in units of 256 crystal cycles: about 1 ms (RP2040 datasheet,
/// 2.16.3, and the Pico SDK's value).
const XOSC_STARTUP_DELAY: u16 = ((XOSC_HZ / 1000 + 128) / 256) as u16;
/// The UART's divisor clk_peri / (16 × 115200) = 6.51, in 64ths (datasheet, 4.2.7.1):
/// 8 × 12 MHz / 115200 = 833, integer part 833 >> 7 = 6, fraction
/// (833 & 0x7f) / 2 rounded up = 33 (the remainder in 64ths, rounded to nearest),
/// so 6 + 33/64 gives 115,107 baud (0.08% slow).
const BAUD: u32 = 115_200;
const BAUD_DIV: u32 = 8 * XOSC_HZ / BAUD;
const IBRD: u16 = (BAUD_DIV >> 7) as u16;
const FBRD: u8 = (BAUD_DIV & 0x7f).div_ceil(2) as u8;
const _: () = assert!(IBRD == 6 && FBRD == 33);
/// UART0 on GP0 (TX) and GP1 (RX): function 2 of those pins.
const TX_PIN: usize = 0;
const RX_PIN: usize = 1;

const IDENTITY: Identity<'static> = Identity {
    firmware: concat!("mlp-board-pico ", env!("CARGO_PKG_VERSION")),
    board: "pico",
};

/// `clk_ref`, `clk_sys` and `clk_peri` at 12 MHz from the crystal. Written to work from
/// any earlier setting too, not only from reset: the glitchless muxes of `clk_ref` and
/// `clk_sys` are switched with a wait for their `SELECTED` flag, and `clk_peri` (an
/// auxiliary mux only) is stopped before its source changes.
fn clocks_from_crystal(xosc: &pac::XOSC, clocks: &pac::CLOCKS) {
    // SAFETY: the delay is a 14-bit count; this one is 47.
    xosc.startup()
        .write(|w| unsafe { w.delay().bits(XOSC_STARTUP_DELAY) });
    xosc.ctrl()
        .write(|w| w.freq_range()._1_15mhz().enable().enable());
    while xosc.status().read().stable().bit_is_clear() {}

    // clk_sys onto clk_ref first (it may run from a PLL or its aux source), then clk_ref
    // onto the crystal; both dividers to 1. SELECTED is one-hot in the SRC values.
    clocks.clk_sys_ctrl().modify(|_, w| w.src().clk_ref());
    while clocks.clk_sys_selected().read().bits() != 1 << 0 {}
    clocks.clk_ref_ctrl().modify(|_, w| w.src().xosc_clksrc());
    while clocks.clk_ref_selected().read().bits() != 1 << 2 {}
    // SAFETY: 1 is a valid integer divisor for clk_ref (a 2-bit field; 0 means 4).
    clocks.clk_ref_div().write(|w| unsafe { w.int().bits(1) });
    // SAFETY: 1 is a valid integer divisor for clk_sys (24 bits; 0 means 2^24), with
    // no fraction.
    clocks.clk_sys_div().write(|w| unsafe { w.int().bits(1) });

    // clk_peri from clk_sys. Its mux has no glitch protection: stop the clock, let two
    // cycles of the old source pass (64 cycles of ours, 5 µs, cover any source above
    // 0.4 MHz), switch, start.
    clocks.clk_peri_ctrl().modify(|_, w| w.enable().clear_bit());
    cortex_m::asm::delay(64);
    clocks
        .clk_peri_ctrl()
        .write(|w| w.auxsrc().clk_sys().enable().set_bit());
}

#[entry]
fn main() -> ! {
    let Some(device) = pac::Peripherals::take() else {
        reset()
    };
    clocks_from_crystal(&device.XOSC, &device.CLOCKS);

    // UART0 and the GPIO banks through a reset (UART0 may be left configured by an
    // earlier run), then wait until they are out of it.
    let resets = &device.RESETS;
    resets.reset().modify(|_, w| {
        w.uart0()
            .set_bit()
            .io_bank0()
            .set_bit()
            .pads_bank0()
            .set_bit()
    });
    resets.reset().modify(|_, w| {
        w.uart0()
            .clear_bit()
            .io_bank0()
            .clear_bit()
            .pads_bank0()
            .clear_bit()
    });
    loop {
        let done = resets.reset_done().read();
        if done.uart0().bit_is_set()
            && done.io_bank0().bit_is_set()
            && done.pads_bank0().bit_is_set()
        {
            break;
        }
    }

    // Pads: input enabled and output allowed (their reset state) on both; the RX pad
    // pulled up instead of down, so an unconnected line idles high (no break).
    let pads = &device.PADS_BANK0;
    pads.gpio(TX_PIN)
        .modify(|_, w| w.ie().set_bit().od().clear_bit());
    pads.gpio(RX_PIN).modify(|_, w| {
        w.ie()
            .set_bit()
            .od()
            .clear_bit()
            .pue()
            .set_bit()
            .pde()
            .clear_bit()
    });
    let io = &device.IO_BANK0;
    io.gpio(TX_PIN).gpio_ctrl().write(|w| w.funcsel().uart());
    io.gpio(RX_PIN).gpio_ctrl().write(|w| w.funcsel().uart());

    // The divisors take effect with the LCR_H write that follows them (PL011 manual).
    let uart = &device.UART0;
    // SAFETY: IBRD is a 16-bit field, and 6 a valid divisor (1 to 65535).
    uart.uartibrd()
        .write(|w| unsafe { w.baud_divint().bits(IBRD) });
    // SAFETY: FBRD is a 6-bit field; 33 fits.
    uart.uartfbrd()
        .write(|w| unsafe { w.baud_divfrac().bits(FBRD) });
    // SAFETY: word length 0b11 is 8 bits, a valid 2-bit value.
    uart.uartlcr_h()
        .write(|w| unsafe { w.wlen().bits(0b11) }.fen().set_bit());
    uart.uartcr()
        .write(|w| w.uarten().set_bit().txe().set_bit().rxe().set_bit());

    mlp_board_common::serve::<INPUTS, CLASSES, WIDTH, RX>(IDENTITY, None, &mut Uart0(device.UART0))
}

/// UART0 (a PL011), enabled with its FIFOs.
struct Uart0(pac::UART0);

impl SerialLink for Uart0 {
    fn read(&mut self) -> u8 {
        // The error bits of a byte sit beside it in DR; the byte is returned anyway.
        mlp_board_common::wait_until(|| self.0.uartfr().read().rxfe().bit_is_clear());
        self.0.uartdr().read().data().bits()
    }

    fn write(&mut self, frame: &[u8]) {
        for &out in frame {
            mlp_board_common::wait_until(|| self.0.uartfr().read().txff().bit_is_clear());
            // SAFETY: DATA is an 8-bit field; a byte is one.
            self.0.uartdr().write(|w| unsafe { w.data().bits(out) });
        }
    }
}

/// Restarts the whole chip through the watchdog. On the RP2040, `SCB::sys_reset` would
/// restart only the core, leaving the peripherals as they were; the watchdog, with
/// everything but the oscillators selected (as the Pico SDK's `watchdog_reboot` does),
/// restarts the chip as the reset pin would, through the boot ROM and boot2.
fn reset() -> ! {
    // SAFETY: nothing runs after this point but the reset: taking the PSM and watchdog
    // registers here cannot race another user of them.
    let device = unsafe { pac::Peripherals::steal() };
    device.PSM.wdsel().write(|w| {
        w.clocks().set_bit();
        w.resets().set_bit();
        w.busfabric().set_bit();
        w.rom().set_bit();
        w.sram0().set_bit();
        w.sram1().set_bit();
        w.sram2().set_bit();
        w.sram3().set_bit();
        w.sram4().set_bit();
        w.sram5().set_bit();
        w.xip().set_bit();
        w.vreg_and_chip_reset().set_bit();
        w.sio().set_bit();
        w.proc0().set_bit();
        w.proc1().set_bit()
    });
    device.WATCHDOG.ctrl().write(|w| w.trigger().set_bit());
    loop {
        cortex_m::asm::nop();
    }
}

/// A panic cannot happen in the protocol's code (`mlp-embedded` is tested not to
/// panic); if one did, the board restarts and serves again rather than hanging.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    reset()
}
