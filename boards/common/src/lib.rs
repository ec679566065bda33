//! What every board's firmware shares, so that a board crate holds only what is its
//! own (clocks, pins, the UART's registers, how the chip restarts):
//!
//! - [`model_region`]: the model flashed on its own, at the start of the `MODEL` region
//!   of the board's `memory.x`;
//! - [`serve`]: loads that model (`f32` or int8), logs what it serves over RTT, and
//!   answers the serial protocol (`docs/PROTOCOL.md`) forever, through the board's
//!   [`SerialLink`];
//! - [`wait_until`]: the one loop in which the firmware waits for its UART, so that an
//!   instruction count can leave the waiting out (`scripts/firmware.sh boards-bench`).
#![no_std]

use defmt_rtt as _;
use mlp_embedded::protocol::{AnyClassifier, Classifier, Identity, Server, MAX_RESPONSE_FRAME};

/// A board's UART, as the protocol loop uses it.
pub trait SerialLink {
    /// Waits for the next received byte. A byte received with a framing, parity or
    /// overrun error is returned all the same: the protocol answers the frame it ends
    /// up in as damaged.
    fn read(&mut self) -> u8;

    /// Sends one answer frame, whole, and returns once the UART has taken it.
    fn write(&mut self, frame: &[u8]);
}

/// Spins until `ready` says so: every board's UART driver waits for its hardware here.
///
/// Never inlined, so that the waiting has a symbol of its own (`wait_until`): QEMU's
/// instruction-count plugin (`tools/qemu-insn-count`, `idle=wait_until`) leaves the
/// spinning out of its counts, since how long a UART waits depends on the host, not on
/// the firmware's work.
#[inline(never)]
pub fn wait_until(mut ready: impl FnMut() -> bool) {
    while !ready() {}
}

extern "C" {
    // Defined in every board's memory.x.
    static _model_region_start: u8;
    static _model_region_end: u8;
}

/// The board's `MODEL` flash region, where a model is flashed on its own.
pub fn model_region() -> &'static [u8] {
    let start = &raw const _model_region_start;
    let len = &raw const _model_region_end as usize - start as usize;
    // SAFETY: every board's memory.x reserves this region of memory-mapped flash (on
    // the RP2040, the execute-in-place window boot2 sets up) for the model; nothing in
    // the firmware writes it, so it is valid, immutable memory for the whole run.
    unsafe { core::slice::from_raw_parts(start, len) }
}

/// Loads the model of the `MODEL` region — `IN` inputs, `OUT` classes, layers up to
/// `WIDTH` wide — and serves the protocol on `link` with a receive buffer of `RX` bytes
/// (`request_frame_len(n) - 1` for requests of `n` bytes), forever. A region without a
/// model the firmware can run is served too: `Info` says why, predictions are refused.
pub fn serve<const IN: usize, const OUT: usize, const WIDTH: usize, const RX: usize>(
    identity: Identity<'static>,
    cycle_counter: Option<fn() -> u32>,
    link: &mut impl SerialLink,
) -> ! {
    let model = mlp_embedded::model_in_region(model_region())
        .and_then(AnyClassifier::<'static, IN, OUT, WIDTH>::load);
    match &model {
        Ok(model) => {
            let summary = model.summary();
            defmt::info!(
                "{=str}: serving a model of layer sizes {=[?]}, payload CRC-32 {=u32:08x}",
                identity.firmware,
                summary.layer_sizes.as_slice(),
                summary.payload_crc
            );
        }
        Err(_) => defmt::warn!(
            "{=str}: no valid model in the model region (`board info` says why)",
            identity.firmware
        ),
    }
    let mut server = Server::<RX, _>::new(identity, model, cycle_counter);
    let (mut body, mut frame) = ([0; MAX_RESPONSE_FRAME], [0; MAX_RESPONSE_FRAME]);
    loop {
        let byte = link.read();
        if let Some(reply) = server.receive(byte, &mut body, &mut frame) {
            link.write(reply);
        }
    }
}
