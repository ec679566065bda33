//! `board`: the host side of the serial protocol (`docs/PROTOCOL.md`). Talks to
//! firmware on a board through a serial port, to an emulated board through a TCP
//! socket, or starts QEMU itself for the emulated boards, and checks what the device
//! computes against the host, logit for logit: images as pixels (`PredictPixels`), the
//! rows of a CSV file as `f32` features (`PredictFeatures`).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cli::TableArgs;
use crate::data::TableSource;
use crate::output::{out, outln};
use crate::quantize::AnyModel;
use mlp_core::format::InputKind;
use mlp_embedded::protocol::{
    decode_frame, encode_frame, Answer, DeviceInfo, Element, ErrorAnswer, Logits, ModelStatus,
    Request, Response, PROTOCOL_VERSION,
};

/// How long one answer may take: a 784-100-200-10 `f32` prediction takes well under a
/// second on the slowest board and in QEMU; a silent device is reported after this.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the first `Info` waits before it is sent again: a board that was just
/// reset, or QEMU that was just started, drops bytes until its UART is enabled.
const HELLO_RETRY: Duration = Duration::from_millis(300);

/// How long a device may take to start answering at all.
const HELLO_TIMEOUT: Duration = Duration::from_secs(15);

/// Boards that QEMU emulates, with what it takes to start one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EmulatedBoard {
    /// STM32F405 (QEMU `netduinoplus2`), firmware `boards/stm32f4`.
    Stm32f4,
    /// BBC micro:bit v1, nRF51822 (QEMU `microbit`), firmware `boards/microbit`.
    Microbit,
}

impl EmulatedBoard {
    fn machine(self) -> &'static str {
        match self {
            Self::Stm32f4 => "netduinoplus2",
            Self::Microbit => "microbit",
        }
    }

    /// Where the board's `memory.x` puts the `MODEL` region.
    pub fn model_address(self) -> u32 {
        match self {
            Self::Stm32f4 => 0x0808_0000,
            Self::Microbit => 0x0002_0000,
        }
    }

    /// The firmware's ELF file as `scripts/firmware.sh` builds it, relative to the
    /// repository.
    pub fn default_firmware(self) -> &'static str {
        match self {
            Self::Stm32f4 => "boards/target/thumbv7em-none-eabihf/release/mlp-board-stm32f4",
            Self::Microbit => "boards/target/thumbv6m-none-eabi/release/mlp-board-microbit",
        }
    }
}

/// Where the device is.
#[derive(Clone, Debug)]
pub enum Target {
    /// A serial port (`/dev/ttyACM0`, `COM3`) at a baud rate.
    Serial {
        /// The port's path.
        path: String,
        /// Bits per second; the firmware's is 115200.
        baud: u32,
    },
    /// A TCP socket, as QEMU's `-serial tcp:HOST:PORT,server=on` offers.
    Tcp(SocketAddr),
    /// QEMU started by this command, with a firmware and a model loaded into the
    /// board's model region.
    Qemu {
        /// The emulated board.
        board: EmulatedBoard,
        /// The firmware's ELF file.
        firmware: PathBuf,
        /// The model file put into the model region (none: the region stays empty).
        model: Option<PathBuf>,
    },
}

trait Port: Read + Write + Send {
    fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()>;
}

impl Port for TcpStream {
    fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))
    }
}

impl Port for Box<dyn serialport::SerialPort> {
    fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        serialport::SerialPort::set_timeout(self.as_mut(), timeout).map_err(std::io::Error::from)
    }
}

/// A QEMU process that is killed when this is dropped.
struct Emulator {
    child: Child,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a device says about itself (the protocol's `DeviceInfo`, owned).
#[derive(Clone, Debug, PartialEq)]
pub struct BoardInfo {
    /// The protocol version.
    pub protocol: u32,
    /// The firmware's name and version.
    pub firmware: String,
    /// The board it was built for.
    pub board: String,
    /// The longest request frame it receives.
    pub max_request_frame: u32,
    /// The model it runs, or why it has none.
    pub model: ModelStatus,
}

impl std::fmt::Display for BoardInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "firmware: {} on {}", self.firmware, self.board)?;
        writeln!(
            f,
            "protocol: version {}, requests up to {} bytes",
            self.protocol, self.max_request_frame
        )?;
        match &self.model {
            ModelStatus::Loaded(summary) => {
                let sizes: Vec<String> = summary.layer_sizes.iter().map(u32::to_string).collect();
                let element = match summary.element {
                    Element::F32 => "f32",
                    Element::Int8 => "int8",
                };
                writeln!(
                    f,
                    "model: {} {element}, payload CRC-32 {:08x}",
                    sizes.join("-"),
                    summary.payload_crc
                )
            }
            ModelStatus::Missing(reason) => {
                writeln!(f, "model: no valid model in the model region: {reason}")
            }
        }
    }
}

/// A connection to a device that speaks the protocol.
pub struct Board {
    port: Box<dyn Port>,
    // Dropped after the port, so the socket closes before QEMU is killed.
    _emulator: Option<Emulator>,
    received: Vec<u8>,
    info: BoardInfo,
}

impl Board {
    /// Connects to `target` and reads its `Info`, retrying while the device starts.
    pub fn connect(target: &Target) -> Result<Board> {
        let (port, emulator): (Box<dyn Port>, _) = match target {
            Target::Serial { path, baud } => {
                let port = serialport::new(path, *baud)
                    .timeout(HELLO_RETRY)
                    .open()
                    .with_context(|| format!("cannot open serial port {path}"))?;
                (Box::new(port), None)
            }
            Target::Tcp(address) => {
                let stream = TcpStream::connect_timeout(address, Duration::from_secs(5))
                    .with_context(|| format!("cannot connect to {address}"))?;
                (Box::new(stream), None)
            }
            Target::Qemu {
                board,
                firmware,
                model,
            } => {
                let (stream, emulator) = start_qemu(*board, firmware, model.as_deref())?;
                (Box::new(stream), Some(emulator))
            }
        };
        let mut board = Board {
            port,
            _emulator: emulator,
            received: Vec::new(),
            info: BoardInfo {
                protocol: 0,
                firmware: String::new(),
                board: String::new(),
                max_request_frame: 0,
                model: ModelStatus::Missing(heapless::String::new()),
            },
        };
        board.hello()?;
        Ok(board)
    }

    /// What the device said about itself when it was connected.
    pub fn info(&self) -> &BoardInfo {
        &self.info
    }

    fn hello(&mut self) -> Result<()> {
        let started = Instant::now();
        let frame = frame_of(&Request::Info)?;
        let info = loop {
            // A lone delimiter first: whatever the device had received is dropped.
            self.send(&[0])?;
            self.send(&frame)?;
            // A device that was starting may have caught only the end of a request and
            // answered it as damaged: only an Info answer ends the greeting.
            if let Some(reply) = self.receive(HELLO_RETRY)? {
                if let Ok(Reply::Info(info)) = decode_reply(reply) {
                    break info;
                }
            }
            if started.elapsed() >= HELLO_TIMEOUT {
                bail!(
                    "the device did not answer within {} s (is the firmware running, and the \
                     baud rate 115200?)",
                    HELLO_TIMEOUT.as_secs()
                );
            }
        };
        // Answers to the retries that crossed the first one on the line.
        while self.receive(HELLO_RETRY)?.is_some() {}
        if info.protocol != PROTOCOL_VERSION {
            bail!(
                "the device speaks protocol version {}, this tool version {PROTOCOL_VERSION}",
                info.protocol
            );
        }
        self.info = info;
        Ok(())
    }

    /// Sends one request and returns its answer.
    fn exchange(&mut self, request: &Request) -> Result<Reply> {
        let frame = frame_of(request)?;
        self.send(&frame)?;
        self.answer()
    }

    /// The next answer that is not a late answer to the greeting: `hello` may have sent
    /// `Info` more than once while the device was starting, and every request gets
    /// one answer, so the extra `Info` answers can arrive after the greeting ended.
    fn answer(&mut self) -> Result<Reply> {
        loop {
            let frame = self.receive(ANSWER_TIMEOUT)?.ok_or_else(|| {
                anyhow::anyhow!(
                    "the device did not answer within {} s",
                    ANSWER_TIMEOUT.as_secs()
                )
            })?;
            match decode_reply(frame)? {
                Reply::Info(_) => continue,
                reply => return Ok(reply),
            }
        }
    }

    /// Classifies one input given as one byte per input (pixels).
    pub fn predict_pixels(&mut self, pixels: &[u8]) -> Result<Answer> {
        self.prediction(&Request::PredictPixels(pixels))
    }

    /// Classifies one feature vector, sent as little-endian `f32` values: the device
    /// applies the model's input transform (and an int8 model's input quantization).
    pub fn predict_features(&mut self, features: &[f32]) -> Result<Answer> {
        let bytes: Vec<u8> = features.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.prediction(&Request::PredictFeatures(&bytes))
    }

    fn prediction(&mut self, request: &Request) -> Result<Answer> {
        match self.exchange(request)? {
            Reply::Prediction(answer) => Ok(answer),
            Reply::Error(error) => bail!("the device answered: {}", describe(error)),
            Reply::Info(_) => bail!("the device answered a prediction with Info"),
        }
    }

    /// Sends raw bytes as they are (for tests of the device's handling of bad frames:
    /// they must hold exactly one frame) and returns the answer.
    pub fn raw_exchange(&mut self, bytes: &[u8]) -> Result<Reply> {
        self.send(bytes)?;
        self.answer()
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.port
            .write_all(bytes)
            .and_then(|()| self.port.flush())
            .context("cannot send to the device")
    }

    /// Reads until a frame ends or `timeout` passes with no complete frame.
    fn receive(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.received.iter().position(|&b| b == 0) {
                let frame: Vec<u8> = self.received.drain(..=end).collect();
                if end == 0 {
                    continue;
                }
                return Ok(Some(frame[..end].to_vec()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.port
                .set_timeout(left)
                .context("cannot set a timeout")?;
            let mut chunk = [0u8; 1024];
            match self.port.read(&mut chunk) {
                Ok(0) => bail!("the device closed the connection"),
                Ok(n) => self.received.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("cannot read from the device"),
            }
        }
    }
}

fn frame_of(request: &Request) -> Result<Vec<u8>> {
    let capacity = 64
        + 2 * match request {
            Request::Info => 0,
            Request::PredictPixels(bytes) | Request::PredictFeatures(bytes) => bytes.len(),
        };
    let (mut body, mut frame) = (vec![0; capacity], vec![0; capacity]);
    Ok(encode_frame(request, &mut body, &mut frame)
        .map_err(|e| anyhow::anyhow!("cannot encode the request: {e}"))?
        .to_vec())
}

/// A device's answer, owned (the protocol's `Response` borrows from its frame).
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// The answer to `Info`.
    Info(BoardInfo),
    /// A prediction.
    Prediction(Answer),
    /// The device could not answer the request.
    Error(ErrorAnswer),
}

/// Decodes one answer frame (without its delimiter).
fn decode_reply(mut frame: Vec<u8>) -> Result<Reply> {
    Ok(match decode_frame::<Response>(&mut frame) {
        Ok(Response::Info(info)) => Reply::Info(owned_info(&info)),
        Ok(Response::Prediction(answer)) => Reply::Prediction(answer),
        Ok(Response::Error(error)) => Reply::Error(error),
        Err(error) => bail!("the device's answer is damaged: {error}"),
    })
}

fn owned_info(info: &DeviceInfo<'_>) -> BoardInfo {
    BoardInfo {
        protocol: info.protocol,
        firmware: info.identity.firmware.to_owned(),
        board: info.identity.board.to_owned(),
        max_request_frame: info.max_request_frame,
        model: info.model.clone(),
    }
}

/// A device's error answer in words.
pub fn describe(error: ErrorAnswer) -> String {
    match error {
        ErrorAnswer::Garbled => "the request arrived damaged (COBS or CRC-32)".into(),
        ErrorAnswer::Malformed => "the request is not one this firmware knows".into(),
        ErrorAnswer::TooLong { limit } => {
            format!("the request is longer than the device's {limit}-byte buffer")
        }
        ErrorAnswer::WrongInputLength { expected, found } => {
            format!("the input has {found} bytes, the model takes {expected}")
        }
        ErrorAnswer::NoModel => "no valid model in the model region (see `board info`)".into(),
        ErrorAnswer::Unsupported => "the model cannot answer this request".into(),
        ErrorAnswer::AnswerTooLong => "the answer does not fit the device's buffer".into(),
    }
}

fn start_qemu(
    board: EmulatedBoard,
    firmware: &Path,
    model: Option<&Path>,
) -> Result<(TcpStream, Emulator)> {
    if !firmware.is_file() {
        bail!(
            "{}: no firmware there; build it with `scripts/firmware.sh boards` (or cargo build \
             --release in the board's folder)",
            firmware.display()
        );
    }
    if let Some(model) = model {
        std::fs::metadata(model).with_context(|| format!("{}", model.display()))?;
    }
    // A free port: bound and released, then QEMU listens on it.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .context("cannot find a free local port")?
        .port();
    let mut command = Command::new("qemu-system-arm");
    command
        .args([
            "-machine",
            board.machine(),
            "-display",
            "none",
            "-monitor",
            "none",
        ])
        .args([
            "-serial",
            &format!("tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on"),
        ])
        .arg("-kernel")
        .arg(firmware);
    if let Some(model) = model {
        command.arg("-device").arg(format!(
            "loader,file={},addr={:#x}",
            model.display(),
            board.model_address()
        ));
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start qemu-system-arm (Debian: apt-get install qemu-system-arm)")?;
    let mut emulator = Emulator { child };
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    loop {
        if let Ok(stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) {
            stream.set_nodelay(true).ok();
            return Ok((stream, emulator));
        }
        if let Ok(Some(status)) = emulator.child.try_wait() {
            let mut message = String::new();
            if let Some(mut stderr) = emulator.child.stderr.take() {
                let _ = stderr.read_to_string(&mut message);
            }
            bail!("qemu-system-arm exited ({status}): {}", message.trim());
        }
        if started.elapsed() > Duration::from_secs(10) {
            bail!("qemu-system-arm did not open its serial port within 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The device's answer as the logits' bits, for comparison with the host's.
pub fn logit_bits(logits: &Logits) -> Vec<u32> {
    match logits {
        Logits::F32(values) => values.iter().map(|v| v.to_bits()).collect(),
        Logits::Int8 { logits, .. } => logits.iter().map(|&v| v as u32).collect(),
    }
}

/// What `board evaluate` measured.
#[derive(Clone, Debug, PartialEq)]
pub struct BoardEvaluation {
    /// What was sent: `"image"` or `"row"`.
    pub noun: &'static str,
    /// Inputs sent (images or rows).
    pub inputs: usize,
    /// Inputs the device classified correctly.
    pub correct: usize,
    /// Inputs the host classified correctly with the same model file (the device's
    /// arithmetic: the core's for `f32`, the integer pass for int8).
    pub host_correct: usize,
    /// Inputs whose logits differ from the host's in any bit.
    pub mismatched: usize,
    /// The median round trip of one prediction (request sent to answer received).
    pub median_round_trip: Duration,
    /// The median of the device's cycle counts, when it reports them.
    pub median_cycles: Option<u32>,
}

impl std::fmt::Display for BoardEvaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (n, noun) = (self.inputs, self.noun);
        let accuracy = 100.0 * self.correct as f64 / n.max(1) as f64;
        writeln!(
            f,
            "accuracy on the device: {accuracy:.2}% ({}/{n})",
            self.correct
        )?;
        writeln!(
            f,
            "accuracy on the host, same model and {noun}s: {:.2}% ({}/{n})",
            100.0 * self.host_correct as f64 / n.max(1) as f64,
            self.host_correct,
        )?;
        writeln!(
            f,
            "logits equal to the host's, bit for bit: {}/{n}",
            n - self.mismatched,
        )?;
        writeln!(
            f,
            "round trip per {noun}: {:.2} ms (median)",
            self.median_round_trip.as_secs_f64() * 1e3
        )?;
        match self.median_cycles {
            Some(cycles) => writeln!(f, "inference on the device: {cycles} cycles (median)"),
            None => writeln!(
                f,
                "inference on the device: cycles not measured (an emulator, or a Cortex-M0, which has no cycle counter)"
            ),
        }
    }
}

/// The host's logits for one input, as the device computes them: the core's arithmetic
/// for `f32` models (bit for bit), the integer pass for int8 models.
pub struct HostModel {
    model: AnyModel,
    payload_crc: u32,
    path: PathBuf,
}

impl HostModel {
    /// Reads a model file, `f32` or int8.
    pub fn load(path: &Path) -> Result<HostModel> {
        let model = AnyModel::load(path)?;
        let payload_crc = match &model {
            AnyModel::F32(mlp) => {
                let bytes = mlp.to_bytes()?;
                mlp_core::format::ModelView::decode(&bytes)
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .payload_crc()
            }
            AnyModel::Int8(int8) => int8.payload_crc(),
        };
        Ok(HostModel {
            model,
            payload_crc,
            path: path.to_path_buf(),
        })
    }

    /// Layer sizes, inputs first.
    pub fn layer_sizes(&self) -> Vec<usize> {
        match &self.model {
            AnyModel::F32(mlp) => mlp.sizes().to_vec(),
            AnyModel::Int8(int8) => int8.sizes(),
        }
    }

    /// What the model's first layer is given: pixels, standardized or plain features.
    pub fn input_kind(&self) -> InputKind {
        match &self.model {
            AnyModel::F32(mlp) => match mlp.input {
                crate::model::Input::Features => InputKind::Features,
                crate::model::Input::Pixels => InputKind::Pixels,
                crate::model::Input::Standardized { .. } => InputKind::Standardized,
            },
            AnyModel::Int8(int8) => int8.input_kind(),
        }
    }

    /// The class names the model file holds.
    pub fn class_names(&self) -> Option<Vec<String>> {
        match &self.model {
            AnyModel::F32(mlp) => mlp.class_names.clone(),
            AnyModel::Int8(int8) => int8.class_names(),
        }
    }

    /// The payload CRC-32 stored in the file, which the device reports for its model.
    pub fn payload_crc(&self) -> u32 {
        self.payload_crc
    }

    /// The class the host predicts from logit bits of [`logit_bits`](Self::logit_bits):
    /// the first largest logit, as the device picks it.
    pub fn class_of(&self, bits: &[u32]) -> usize {
        match self.model {
            AnyModel::F32(_) => {
                let logits: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
                mlp_core::loss::argmax(&logits)
            }
            AnyModel::Int8(_) => {
                let logits: Vec<i32> = bits.iter().map(|&b| b as i32).collect();
                mlp_core::quant::argmax_i32(&logits)
            }
        }
    }

    /// Logit bits for each image (`f32::to_bits`, or the int32 logits).
    pub fn logit_bits(&self, images: &[&[u8]]) -> Result<Vec<Vec<u32>>> {
        match &self.model {
            AnyModel::F32(model) => images
                .iter()
                .map(|pixels| {
                    // pixel / 255 for a model of pixels; other models' transform of
                    // byte features, as the device's `predict_pixels`.
                    let input = model.inputs_of_bytes(pixels);
                    Ok(model
                        .logits_one(&input)?
                        .iter()
                        .map(|v| v.to_bits())
                        .collect())
                })
                .collect(),
            AnyModel::Int8(model) => Ok(model.with_predictor(|predict, _| {
                images
                    .iter()
                    .map(|pixels| predict(pixels).iter().map(|&v| v as u32).collect())
                    .collect()
            })),
        }
    }

    /// Logit bits for each feature vector of `values` (`features` values a row), as the
    /// device's `predict_features` computes them: for `f32`, the model's input
    /// transform and then the layers (`Mlp::logits_features`, the core's code); for
    /// int8, the transform, the input quantization and the integer layers
    /// (`Int8Model::with_feature_predictor`).
    pub fn feature_logit_bits(&self, values: &[f32], features: usize) -> Result<Vec<Vec<u32>>> {
        let rows = values.chunks_exact(features.max(1));
        match &self.model {
            AnyModel::F32(model) => rows
                .map(|row| {
                    Ok(model
                        .logits_features(row)?
                        .iter()
                        .map(|v| v.to_bits())
                        .collect())
                })
                .collect(),
            AnyModel::Int8(model) => Ok(model.with_feature_predictor(|predict, _| {
                rows.map(|row| predict(row).iter().map(|&v| v as u32).collect())
                    .collect()
            })),
        }
    }

    /// Checks that the model takes images of `pixels` pixels.
    fn check_images(&self, pixels: usize) -> Result<()> {
        let inputs = self.layer_sizes()[0];
        if inputs != pixels {
            bail!(
                "{}: the model takes {inputs} inputs but the images have {pixels} pixels (for a \
                 model trained on a CSV file, give --data with its training file)",
                self.path.display()
            );
        }
        Ok(())
    }

    /// Checks that the model classifies rows of a CSV file (`table`, the training
    /// file) of `features` feature columns and `classes` classes: errors name both files.
    fn check_table(&self, table: &Path, features: usize, classes: usize) -> Result<()> {
        let sizes = self.layer_sizes();
        let shape = (sizes[0], sizes[sizes.len() - 1]);
        let data = table.display().to_string();
        crate::model::check_sizes(&self.path, shape, &data, features, classes)
    }
}

/// The rows of a CSV file as a board is sent them, one feature vector a row.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureRows {
    /// The file the rows come from (the training file, for a test split taken from it).
    pub path: PathBuf,
    /// The file's row number of each row, for messages (the header is row 1).
    pub row_numbers: Vec<u64>,
    /// What is sent, `rows × features` values, row-major: the rows' raw values, or
    /// their standardization when [`standardized_on_host`](Self::standardized_on_host).
    pub values: Vec<f32>,
    /// Features a row.
    pub features: usize,
    /// One class a row; empty for a file without the label column.
    pub labels: Vec<u8>,
    /// The training file's class names, when its labels are names.
    pub class_names: Option<Vec<String>>,
    /// True for a model that does not store its standardization (its input transform
    /// is "features as given", as a CSV model of this version): the host sends the rows
    /// standardized with the training split's mean and standard deviation, as
    /// `evaluate` and `predict --rows` give them to it. False: the raw values, which
    /// the device transforms itself.
    pub standardized_on_host: bool,
}

impl FeatureRows {
    /// Rows.
    pub fn len(&self) -> usize {
        self.row_numbers.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.row_numbers.is_empty()
    }

    /// The values sent for row `index` (from 0).
    pub fn row(&self, index: usize) -> &[f32] {
        &self.values[index * self.features..(index + 1) * self.features]
    }
}

/// Which rows of a CSV file [`table_rows`] reads.
#[derive(Clone, Copy, Debug)]
pub enum RowsOf<'a> {
    /// The test split, as `train` and `evaluate` make it from the same flags: the test
    /// file's rows, or the stratified share of the training file's.
    TestSplit,
    /// Every row of this file: the training file's header, with or without its label
    /// column.
    File(&'a Path),
}

/// Reads the rows of a CSV file for `host`'s model: the training file `train`
/// (read and split as `source` says) gives the header, the label column and the
/// classes, and the standardization a model that does not store it was trained with.
///
/// # Errors
/// A model of pixels; a model whose inputs or classes differ from the training file's
/// feature columns or classes; any problem of the files, with its row and column.
pub fn table_rows(
    host: &HostModel,
    train: &Path,
    source: &TableSource,
    which: RowsOf<'_>,
) -> Result<FeatureRows> {
    let standardized_on_host = match host.input_kind() {
        InputKind::Pixels => bail!(
            "{}: a model of pixels (images) cannot classify CSV rows; give the model trained \
             on {} (or send it images)",
            host.path.display(),
            train.display()
        ),
        InputKind::Standardized => false,
        InputKind::Features => true,
        other => bail!(
            "{}: a model of {other:?} inputs cannot classify CSV rows",
            host.path.display()
        ),
    };
    // Validation 0: the standardization is the training split's either way (train and
    // validation rows), and no small file fails for want of validation rows.
    let t = crate::data::load_table_splits(
        train,
        source,
        Some(0),
        None,
        crate::data::TableInputs::Standardized,
    )?;
    host.check_table(train, t.table.features(), t.table.classes.count())?;
    let rows = match which {
        RowsOf::File(path) => mlp_data::table::read_rows(path, &t.table)?,
        RowsOf::TestSplit => {
            let rows = match &source.test {
                Some(test) => mlp_data::table::read_test(test, &t.table)?,
                None => {
                    let (_, taken) = mlp_data::table::stratified_split(
                        &t.table.labels,
                        t.table.classes.count(),
                        mlp_data::table::Share::PartsPerMillion(source.test_ppm),
                        source.split_seed,
                    );
                    t.table.select(&taken)
                }
            };
            // The split keeps only standardized values: these raw rows must be its rows.
            let mut standardized = rows.values.clone();
            t.normalization.apply(&mut standardized);
            if t.splits.test.values.as_ref() != Some(&standardized)
                || t.splits.test.labels != rows.labels
            {
                bail!(
                    "{}: the test rows read for the board are not the test split's (a bug)",
                    train.display()
                );
            }
            rows
        }
    };
    let mut values = rows.values.clone();
    if standardized_on_host {
        t.normalization.apply(&mut values);
    }
    Ok(FeatureRows {
        path: rows.path.clone(),
        row_numbers: rows.row_numbers.clone(),
        values,
        features: rows.features(),
        labels: rows.labels.clone(),
        class_names: t.table.classes.names().map(<[String]>::to_vec),
        standardized_on_host,
    })
}

/// Checks that the device runs `host`'s model: a device without a valid model says
/// why, and one that was built for models of another shape is told how to build one for
/// this model.
fn check_device_model(board: &Board, host: &HostModel) -> Result<()> {
    match &board.info().model {
        ModelStatus::Missing(reason) => {
            let sizes: Vec<String> = host.layer_sizes().iter().map(usize::to_string).collect();
            let hint = if is_shape_problem(reason) {
                format!(
                    "; build a firmware for this model's shape with MLP_LAYERS={} (see \
                     boards/stm32f4/README.md)",
                    sizes.join(",")
                )
            } else {
                String::new()
            };
            bail!("the device has no valid model in its model region: {reason}{hint}")
        }
        ModelStatus::Loaded(summary) => {
            let crc = host.payload_crc();
            if summary.payload_crc != crc {
                bail!(
                    "the device runs another model (payload CRC-32 {:08x}, the host's file \
                     {crc:08x}): flash this file, or pass the file that was flashed",
                    summary.payload_crc
                );
            }
        }
    }
    Ok(())
}

/// Whether the loader's reason (`mlp_embedded::LoadError`'s text, as `Info` carries it)
/// is a model of other inputs, classes or widths than the firmware was built for.
fn is_shape_problem(reason: &str) -> bool {
    reason.contains("the firmware was built for") || reason.contains("the activation buffers hold")
}

/// Sends the first `limit` images of `data` to the device, compares every answer with
/// the host's logits for the same model, and measures the round trips.
pub fn evaluate(
    board: &mut Board,
    host: &HostModel,
    data: &crate::data::Dataset,
    limit: Option<usize>,
) -> Result<BoardEvaluation> {
    host.check_images(data.features)?;
    check_device_model(board, host)?;
    let n = limit.unwrap_or(data.len()).min(data.len());
    let images: Vec<&[u8]> = (0..n).map(|i| data.image(i)).collect();
    let expected = host.logit_bits(&images)?;
    measure(board, host, &expected, &data.labels, "image", |board, i| {
        board
            .predict_pixels(images[i])
            .with_context(|| format!("image {i}"))
    })
}

/// Sends the first `limit` rows to the device as `f32` features (`PredictFeatures`),
/// compares every answer with the host's logits for the same model
/// ([`HostModel::feature_logit_bits`] of the same values), and measures the round trips.
///
/// # Errors
/// Rows without labels; a device that runs another model or none; a device's error
/// answer, with the row's file and number.
pub fn evaluate_rows(
    board: &mut Board,
    host: &HostModel,
    rows: &FeatureRows,
    limit: Option<usize>,
) -> Result<BoardEvaluation> {
    if rows.labels.len() != rows.len() {
        bail!(
            "{}: no label column, so no accuracy to measure",
            rows.path.display()
        );
    }
    check_device_model(board, host)?;
    let n = limit.unwrap_or(rows.len()).min(rows.len());
    let expected = host.feature_logit_bits(&rows.values[..n * rows.features], rows.features)?;
    measure(board, host, &expected, &rows.labels, "row", |board, i| {
        board
            .predict_features(rows.row(i))
            .with_context(|| format!("{} row {}", rows.path.display(), rows.row_numbers[i]))
    })
}

/// Asks the device for input `i` (`ask`) for every `expected` logit list, and counts
/// its right answers (`labels`), the host's, and the answers whose logits differ from
/// the host's in any bit.
fn measure(
    board: &mut Board,
    host: &HostModel,
    expected: &[Vec<u32>],
    labels: &[u8],
    noun: &'static str,
    mut ask: impl FnMut(&mut Board, usize) -> Result<Answer>,
) -> Result<BoardEvaluation> {
    let n = expected.len();
    let host_correct = expected
        .iter()
        .zip(labels)
        .filter(|(bits, &label)| host.class_of(bits) == usize::from(label))
        .count();
    let (mut correct, mut mismatched) = (0, 0);
    let mut round_trips = Vec::with_capacity(n);
    let mut cycles = Vec::new();
    for (i, (bits, &label)) in expected.iter().zip(labels).enumerate() {
        let started = Instant::now();
        let answer = ask(board, i)?;
        round_trips.push(started.elapsed());
        cycles.extend(answer.cycles);
        correct += usize::from(answer.class as usize == usize::from(label));
        mismatched += usize::from(&logit_bits(&answer.logits) != bits);
    }
    round_trips.sort();
    cycles.sort();
    Ok(BoardEvaluation {
        noun,
        inputs: n,
        correct,
        host_correct,
        mismatched,
        median_round_trip: round_trips.get(n / 2).copied().unwrap_or_default(),
        median_cycles: cycles.get(cycles.len() / 2).copied(),
    })
}

/// Options of `board`.
#[derive(Debug, clap::Args)]
pub struct BoardArgs {
    /// What to ask the board.
    #[command(subcommand)]
    pub action: BoardAction,
}

/// What `board` does.
#[derive(Debug, clap::Subcommand)]
pub enum BoardAction {
    /// Print the firmware, the protocol version and the model the board runs.
    Info(LinkArgs),
    /// Classify images of digits on the board, or the rows of a CSV file (--rows).
    Predict {
        /// Where the board is.
        #[command(flatten)]
        link: LinkArgs,
        /// Images (PNG or PGM) of single digits.
        #[arg(required_unless_present = "rows", conflicts_with = "rows")]
        images: Vec<PathBuf>,
        /// Classify the rows of this CSV file instead, sent as `f32` features, and check
        /// every logit against the host's for --model: the training file's header, with
        /// or without its label column (needs --data and --model).
        #[arg(long, value_name = "FILE.csv", requires_all = ["data", "model"])]
        rows: Option<PathBuf>,
        /// With --rows: the CSV training file and the flags the model was trained with.
        #[arg(long, value_name = "FILE.csv", requires = "rows")]
        data: Option<PathBuf>,
        /// How the CSV training file is read and split.
        #[command(flatten)]
        table: TableArgs,
    },
    /// Send test images, or the test split of a CSV file, print the accuracy measured
    /// on the board, and check every logit against the host's for the same model file
    /// (`--model`).
    Evaluate {
        /// Where the board is.
        #[command(flatten)]
        link: LinkArgs,
        /// Data directory, or the CSV training file (with the flags the model was
        /// trained with: they give the same test split) [default: the bundled digits].
        #[arg(long, value_name = "DIR|FILE.csv")]
        data: Option<PathBuf>,
        /// How a CSV file is read and split.
        #[command(flatten)]
        table: TableArgs,
        /// Send only the first N test images or rows.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
    },
}

/// Where the board is: exactly one of `--port`, `--tcp`, `--qemu`.
#[derive(Debug, clap::Args)]
pub struct LinkArgs {
    /// A serial port the board is on (`/dev/ttyACM0`, `COM3`).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["tcp", "qemu"])]
    pub port: Option<String>,
    /// The serial port's speed.
    #[arg(long, default_value_t = 115_200, requires = "port")]
    pub baud: u32,
    /// A TCP socket that carries the board's serial line (QEMU's `-serial tcp:...`).
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "qemu")]
    pub tcp: Option<SocketAddr>,
    /// Start QEMU with this emulated board, its firmware, and `--model` in its model
    /// region.
    #[arg(long, value_enum, value_name = "BOARD")]
    pub qemu: Option<EmulatedBoard>,
    /// The firmware's ELF file for `--qemu` [default: where `scripts/firmware.sh`
    /// builds it].
    #[arg(long, value_name = "ELF", requires = "qemu")]
    pub firmware: Option<PathBuf>,
    /// The model file: loaded into the emulated board's model region (`--qemu`), and
    /// the host's copy that `evaluate` checks the board's logits against.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
}

impl LinkArgs {
    fn target(&self) -> Result<Target> {
        Ok(if let Some(path) = &self.port {
            Target::Serial {
                path: path.clone(),
                baud: self.baud,
            }
        } else if let Some(address) = self.tcp {
            Target::Tcp(address)
        } else if let Some(board) = self.qemu {
            Target::Qemu {
                board,
                firmware: self
                    .firmware
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(board.default_firmware())),
                model: self.model.clone(),
            }
        } else {
            bail!("where is the board? Give --port PATH, --tcp HOST:PORT or --qemu BOARD");
        })
    }
}

/// Runs `board`.
pub fn run(args: &BoardArgs) -> Result<()> {
    match &args.action {
        BoardAction::Info(link) => {
            let board = Board::connect(&link.target()?)?;
            out!("{}", board.info());
        }
        BoardAction::Predict {
            link,
            rows: Some(rows),
            data: Some(data),
            table,
            ..
        } => predict_rows(link, rows, data, table)?,
        BoardAction::Predict { table, .. } if table_flags_given(table) => {
            bail!("--test, --label, --test-fraction and --split-seed go with --rows and --data")
        }
        BoardAction::Predict { link, images, .. } => {
            // The protocol carries class indices; the host has the names when it has
            // the model file.
            let names = match &link.model {
                Some(model) => AnyModel::load(model)?.class_names(),
                None => None,
            };
            let mut board = Board::connect(&link.target()?)?;
            let mut failed = 0;
            for path in images {
                let result = crate::image_input::load_mnist_inputs(path).and_then(|inputs| {
                    board.predict_pixels(&crate::quantize::pixel_bytes(&inputs))
                });
                match result {
                    Ok(answer) => outln!(
                        "{}: {}",
                        path.display(),
                        describe_answer(&answer, names.as_deref())
                    ),
                    Err(error) => {
                        failed += 1;
                        eprintln!("{}: {error:#}", path.display());
                    }
                }
            }
            if failed > 0 {
                bail!(
                    "{failed} of {} images could not be classified",
                    images.len()
                );
            }
        }
        BoardAction::Evaluate {
            link,
            data,
            table,
            limit,
        } => {
            let Some(model) = &link.model else {
                bail!("board evaluate needs --model FILE: the model the board runs, to check its logits");
            };
            let host = HostModel::load(model)?;
            let dir = data.clone().unwrap_or_else(crate::data::bundled_data_dir);
            let limit = limit.map(|n| n as usize);
            let result = match table.source(&dir, None)? {
                Some(source) => {
                    // The host's checks (model against file) come before QEMU starts.
                    let rows = table_rows(&host, &dir, &source, RowsOf::TestSplit)?;
                    let mut board = Board::connect(&link.target()?)?;
                    out!("{}", board.info());
                    check_device_model(&board, &host)?;
                    describe_rows(&rows);
                    evaluate_rows(&mut board, &host, &rows, limit)?
                }
                None => {
                    let data = crate::data::load_split(&dir, crate::data::Split::Test, None)?;
                    host.check_images(data.features)?;
                    let mut board = Board::connect(&link.target()?)?;
                    out!("{}", board.info());
                    evaluate(&mut board, &host, &data, limit)?
                }
            };
            out!("{result}");
            if result.mismatched > 0 || result.correct != result.host_correct {
                bail!(
                    "{} of {} {}s got logits that differ from the host's",
                    result.mismatched,
                    result.inputs,
                    result.noun
                );
            }
        }
    }
    Ok(())
}

/// True when any of the CSV flags was given.
fn table_flags_given(table: &TableArgs) -> bool {
    table.test.is_some()
        || table.label.is_some()
        || table.test_fraction.is_some()
        || table.split_seed.is_some()
}

/// Says what is sent for CSV rows: the raw values, or the host's standardization.
fn describe_rows(rows: &FeatureRows) {
    if rows.standardized_on_host {
        outln!(
            "sent: the rows standardized on the host with the training split's mean and \
             standard deviation (the model does not store them)"
        );
    } else {
        outln!("sent: the rows' raw values (the device applies the model's standardization)");
    }
}

/// `board predict --rows`: every row of a CSV file through the board, each answer's
/// logits checked against the host's for the same model file.
fn predict_rows(link: &LinkArgs, path: &Path, train: &Path, table: &TableArgs) -> Result<()> {
    let Some(model) = &link.model else {
        bail!("board predict --rows needs --model FILE: the model the board runs");
    };
    let host = HostModel::load(model)?;
    let Some(source) = table.source(train, None)? else {
        bail!(
            "--rows needs the CSV training file in --data; {} is not a .csv file",
            train.display()
        );
    };
    let rows = table_rows(&host, train, &source, RowsOf::File(path))?;
    let mut board = Board::connect(&link.target()?)?;
    check_device_model(&board, &host)?;
    describe_rows(&rows);
    let expected = host.feature_logit_bits(&rows.values, rows.features)?;
    let names = host.class_names().or_else(|| rows.class_names.clone());
    let mut mismatched = 0;
    for (i, bits) in expected.iter().enumerate() {
        let row = rows.row_numbers[i];
        let answer = board
            .predict_features(rows.row(i))
            .with_context(|| format!("{} row {row}", path.display()))?;
        let equal = &logit_bits(&answer.logits) == bits;
        mismatched += usize::from(!equal);
        outln!(
            "{} row {row}: {}{}",
            path.display(),
            describe_answer(&answer, names.as_deref()),
            if equal {
                ""
            } else {
                "  DIFFERS from the host's"
            }
        );
    }
    outln!(
        "logits equal to the host's, bit for bit: {}/{}",
        rows.len() - mismatched,
        rows.len()
    );
    if mismatched > 0 {
        bail!(
            "{mismatched} of {} rows got logits that differ from the host's",
            rows.len()
        );
    }
    Ok(())
}

fn describe_answer(answer: &Answer, names: Option<&[String]>) -> String {
    let logits: Vec<String> = match &answer.logits {
        Logits::F32(values) => values.iter().map(|v| format!("{v:.4}")).collect(),
        Logits::Int8 { logits, scale } => logits
            .iter()
            .map(|&q| format!("{:.4}", q as f32 * scale))
            .collect(),
    };
    let cycles = answer.cycles.map_or_else(
        || "cycles not measured".to_owned(),
        |c| format!("{c} cycles"),
    );
    let name = names
        .and_then(|n| n.get(answer.class as usize))
        .map_or_else(String::new, |n| format!(" {n:?}"));
    format!(
        "class {}{name} (on the board, {cycles})  logits {}",
        answer.class,
        logits.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlp_embedded::LoadError;

    /// The hint for a firmware of another shape reads the loader's words: these are
    /// they, and other problems get no hint.
    #[test]
    fn shape_problems_are_recognised_in_the_loaders_words() {
        let shape = [
            LoadError::InputSizeMismatch {
                expected: 784,
                found: 30,
            },
            LoadError::OutputSizeMismatch {
                expected: 10,
                found: 2,
            },
            LoadError::LayerTooWide {
                layer: 0,
                outputs: 300,
                capacity: 256,
            },
        ];
        for error in shape {
            assert!(is_shape_problem(&error.to_string()), "{error}");
        }
        let other = LoadError::NonFiniteParameter { layer: 0, index: 3 };
        assert!(!is_shape_problem(&other.to_string()));
    }
}
