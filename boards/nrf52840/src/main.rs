//! Firmware for the nRF52840-DK (nRF52840, Cortex-M4F): serves the serial protocol
//! (`docs/PROTOCOL.md`) on UARTE0 — P0.06 transmits, P0.08 receives, 115200 baud, 8N1,
//! the pins the DK wires to its on-board J-Link's USB serial port — with the model
//! flashed at the start of the `MODEL` region of `memory.x`, `f32` or int8.
//!
//! UARTE moves bytes with EasyDMA, which reads and writes RAM only: each received byte
//! lands in a one-byte RAM buffer, and each answer is sent from the frame buffer on the
//! stack (RAM). The UARTE runs from the 64 MHz high-frequency clock; the firmware starts
//! the DK's 32 MHz crystal for it, so the baud rate does not drift with the internal
//! RC oscillator.
#![no_std]
#![no_main]

use core::sync::atomic::{compiler_fence, Ordering};

use cortex_m::peripheral::{DWT, SCB};
use cortex_m_rt::entry;
use mlp_board_common::SerialLink;
use mlp_embedded::protocol::{request_frame_len, Identity};
use nrf52840_pac as pac;

// The models this firmware serves, `INPUTS`, `CLASSES` and `WIDTH`, from `MLP_LAYERS`
// when it is built (build.rs): by default 784 pixel inputs (28×28), 10 classes, layers
// up to 256 wide. `board info` reports a model of another shape as missing, with the
// reason.
include!(concat!(env!("OUT_DIR"), "/shape.rs"));

/// The longest request: `INPUTS` `f32` features (a pixel request is shorter).
const RX: usize = request_frame_len(4 * INPUTS) - 1;
// An answer is sent in one EasyDMA transfer, whose length register has 16 bits.
const _: () = assert!(mlp_embedded::protocol::MAX_RESPONSE_FRAME <= u16::MAX as usize);

/// The DK's UART pins, port 0, wired to the J-Link's serial port.
const TX_PIN: u8 = 6;
const RX_PIN: u8 = 8;

/// UICR.APPROTECT's "hardware disabled" value and the APPROTECT.DISABLE register,
/// which the PAC predates (nRF52840 product specification, build code F and later).
const APPROTECT_HW_DISABLED: u32 = 0x5A;
const APPROTECT_DISABLE: *mut u32 = 0x4000_0558 as *mut u32;
const APPROTECT_SW_DISABLE: u32 = 0x5A;

const IDENTITY: Identity<'static> = Identity {
    firmware: concat!("mlp-board-nrf52840 ", env!("CARGO_PKG_VERSION")),
    board: "nrf52840",
};

fn cycles() -> u32 {
    DWT::cycle_count()
}

/// Keeps the debug port open on chips of build code F and later (FICR variant
/// "AAF0"…), which close it at every reset unless UICR.APPROTECT says "hardware
/// disabled" and the firmware then writes APPROTECT.DISABLE. Without this, probe-rs
/// could reach such a chip only through an erase of the whole flash, model included,
/// and a model could not be flashed on its own. Older chips are left alone.
fn keep_debug_port_open(device: &pac::Peripherals) {
    // The third character of the variant is the build code; 0xFF (unprogrammed) counts
    // as new.
    let build_code = (device.FICR.info.variant.read().bits() >> 8) as u8;
    if build_code < b'F' {
        return;
    }
    // UICR is read at reset: when it is still erased, write it once and restart. A
    // value written by someone else (protection wanted) is kept.
    if device.UICR.approtect.read().bits() == u32::MAX {
        let nvmc = &device.NVMC;
        nvmc.config.write(|w| w.wen().wen());
        while nvmc.ready.read().ready().is_busy() {}
        // SAFETY: UICR.APPROTECT takes a 32-bit word while NVMC allows writes; 0x5A is
        // the product specification's "hardware disabled".
        device
            .UICR
            .approtect
            .write(|w| unsafe { w.bits(APPROTECT_HW_DISABLED) });
        while nvmc.ready.read().ready().is_busy() {}
        nvmc.config.write(|w| w.wen().ren());
        while nvmc.ready.read().ready().is_busy() {}
        SCB::sys_reset();
    }
    // SAFETY: APPROTECT.DISABLE is a write-only register of these chips (build code F
    // and later, checked above); 0x5A is its "software disable" value.
    unsafe { APPROTECT_DISABLE.write_volatile(APPROTECT_SW_DISABLE) };
}

#[entry]
fn main() -> ! {
    let (Some(device), Some(mut core)) = (pac::Peripherals::take(), cortex_m::Peripherals::take())
    else {
        SCB::sys_reset()
    };
    keep_debug_port_open(&device);
    // The cycle counter, for the answers' `cycles`.
    core.DCB.enable_trace();
    core.DWT.enable_cycle_counter();

    // The crystal for the high-frequency clock (HFXO), which the UARTE's baud
    // generator then runs from.
    let clock = &device.CLOCK;
    clock
        .events_hfclkstarted
        .write(|w| w.events_hfclkstarted().clear_bit());
    clock
        .tasks_hfclkstart
        .write(|w| w.tasks_hfclkstart().set_bit());
    while clock
        .events_hfclkstarted
        .read()
        .events_hfclkstarted()
        .bit_is_clear()
    {}

    // Pins as the product specification asks before the UARTE is enabled: TX an output
    // driven high (the line's idle level), RX an input, pulled up so that a line left
    // open (the J-Link tri-states it with no terminal attached) reads idle.
    let p0 = &device.P0;
    // SAFETY: OUTSET sets the pins whose bits are 1; only the TX pin's is.
    p0.outset.write(|w| unsafe { w.bits(1 << TX_PIN) });
    p0.pin_cnf[usize::from(TX_PIN)].write(|w| w.dir().output().input().disconnect());
    p0.pin_cnf[usize::from(RX_PIN)].write(|w| w.dir().input().input().connect().pull().pullup());

    let uarte = &device.UARTE0;
    // SAFETY: the pin field takes 0-31; this is port 0's pin 6.
    uarte.psel.txd.write(|w| {
        unsafe { w.pin().bits(TX_PIN) }
            .port()
            .clear_bit()
            .connect()
            .connected()
    });
    // SAFETY: the pin field takes 0-31; this is port 0's pin 8.
    uarte.psel.rxd.write(|w| {
        unsafe { w.pin().bits(RX_PIN) }
            .port()
            .clear_bit()
            .connect()
            .connected()
    });
    // 0x01D7E000: 115,108 baud actual (product specification).
    uarte.baudrate.write(|w| w.baudrate().baud115200());
    uarte
        .config
        .write(|w| w.hwfc().disabled().parity().excluded().stop().one());
    uarte.enable.write(|w| w.enable().enabled());

    mlp_board_common::serve::<INPUTS, CLASSES, WIDTH, RX>(
        IDENTITY,
        Some(cycles),
        &mut Uarte0 {
            uarte: device.UARTE0,
            received: [0],
        },
    )
}

/// UARTE0, enabled, and the RAM byte EasyDMA receives into.
struct Uarte0 {
    uarte: pac::UARTE0,
    received: [u8; 1],
}

impl SerialLink for Uarte0 {
    fn read(&mut self) -> u8 {
        let uarte = &self.uarte;
        // One received byte at a time: EasyDMA writes it into `received`, in RAM, then
        // signals ENDRX. Bytes that arrive before the next STARTRX wait in the UARTE's
        // small receive FIFO; the host sends a request and then waits, so they never
        // pile up.
        // SAFETY: PTR takes any RAM address; `received` is in RAM and borrowed until
        // ENDRX below. MAXCNT 1 limits the transfer to it.
        uarte
            .rxd
            .ptr
            .write(|w| unsafe { w.ptr().bits(self.received.as_mut_ptr() as u32) });
        // SAFETY: MAXCNT is a 16-bit count; 1 is the size of `received`.
        uarte.rxd.maxcnt.write(|w| unsafe { w.maxcnt().bits(1) });
        uarte.events_endrx.write(|w| w.events_endrx().clear_bit());
        uarte.tasks_startrx.write(|w| w.tasks_startrx().set_bit());
        mlp_board_common::wait_until(|| uarte.events_endrx.read().events_endrx().bit_is_set());
        // The DMA wrote `received` behind the compiler's back: read it after the event.
        compiler_fence(Ordering::SeqCst);
        // SAFETY: `received` is a valid, aligned byte; the DMA transfer into it is over
        // (ENDRX), and no other is started until the next read.
        unsafe { core::ptr::read_volatile(self.received.as_ptr()) }
    }

    fn write(&mut self, frame: &[u8]) {
        if frame.is_empty() {
            return;
        }
        let uarte = &self.uarte;
        // SAFETY: PTR takes any RAM address and `frame` is in RAM (the answer buffer on
        // the stack), borrowed until ENDTX below.
        uarte
            .txd
            .ptr
            .write(|w| unsafe { w.ptr().bits(frame.as_ptr() as u32) });
        // SAFETY: MAXCNT is a 16-bit count, and an answer at most MAX_RESPONSE_FRAME
        // (640) bytes, as asserted at the top.
        uarte
            .txd
            .maxcnt
            .write(|w| unsafe { w.maxcnt().bits(frame.len() as u16) });
        // The answer's bytes are written before the DMA reads them.
        compiler_fence(Ordering::SeqCst);
        uarte.events_endtx.write(|w| w.events_endtx().clear_bit());
        uarte.tasks_starttx.write(|w| w.tasks_starttx().set_bit());
        mlp_board_common::wait_until(|| uarte.events_endtx.read().events_endtx().bit_is_set());
        compiler_fence(Ordering::SeqCst);
    }
}

/// A panic cannot happen in the protocol's code (`mlp-embedded` is tested not to
/// panic); if one did, the board restarts and serves again rather than hanging.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    SCB::sys_reset()
}
