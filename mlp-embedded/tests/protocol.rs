//! The serial protocol: frames byte for byte as `docs/PROTOCOL.md` specifies them, the
//! server's answers equal to the model's own predictions bit for bit, and one error
//! answer for every kind of bad frame, after which the server still answers correctly.

use std::sync::atomic::{AtomicU32, Ordering};

use mlp_embedded::protocol::{
    decode_frame, encode_frame, frame_message, request_frame_len, Answer, Element, ErrorAnswer,
    F32Classifier, FrameError, Identity, Int8Classifier, Logits, ModelStatus, Request, Response,
    Server, MAX_RESPONSE_FRAME, PROTOCOL_VERSION,
};
use mlp_embedded::{doc_example_int8_model, doc_example_model, Int8Model, LoadError, Model};

const IDENTITY: Identity<'static> = Identity {
    firmware: "test 1.0",
    board: "host",
};
const RX: usize = request_frame_len(16) - 1;

type F32Server<'a> = Server<'static, RX, F32Classifier<'a, 4, 2, 3>>;

fn f32_server(file: &[u8], counter: Option<fn() -> u32>) -> F32Server<'_> {
    let model = Model::<4, 2, 3>::load(file).map(|model| F32Classifier {
        model,
        scratch: Default::default(),
    });
    Server::new(IDENTITY, model, counter)
}

fn frame_of(request: &Request) -> Vec<u8> {
    let (mut body, mut frame) = (vec![0; 4096], vec![0; 4096]);
    encode_frame(request, &mut body, &mut frame)
        .unwrap()
        .to_vec()
}

/// The frame of message bytes that no request encodes to.
fn raw_frame(message: &[u8]) -> Vec<u8> {
    let (mut body, mut frame) = (vec![0; 4096], vec![0; 4096]);
    frame_message(message, &mut body, &mut frame)
        .unwrap()
        .to_vec()
}

/// Sends `bytes` one at a time and returns every answer, decoded.
fn exchange<C: mlp_embedded::protocol::Classifier>(
    server: &mut Server<'static, RX, C>,
    bytes: &[u8],
) -> Vec<Response<'static>> {
    let mut answers = Vec::new();
    let (mut body, mut frame) = ([0; MAX_RESPONSE_FRAME], [0; MAX_RESPONSE_FRAME]);
    for &byte in bytes {
        if let Some(reply) = server.receive(byte, &mut body, &mut frame) {
            assert_eq!(reply.last(), Some(&0), "a frame ends with its delimiter");
            assert!(!reply[..reply.len() - 1].contains(&0));
            let copy: &'static mut [u8] = reply[..reply.len() - 1].to_vec().leak();
            let response: Response<'static> = decode_frame(copy).unwrap();
            answers.push(response);
        }
    }
    answers
}

fn only<'a>(answers: &'a [Response<'static>]) -> &'a Response<'static> {
    assert_eq!(answers.len(), 1, "one answer per frame: {answers:?}");
    &answers[0]
}

#[test]
fn frames_are_laid_out_as_the_spec_says() {
    // docs/PROTOCOL.md, "An example": Info is the postcard byte 0x00; its CRC-32
    // is 0xD202EF8D, little-endian; COBS replaces the zero and adds the delimiter.
    assert_eq!(
        frame_of(&Request::Info),
        [0x01, 0x05, 0x8D, 0xEF, 0x02, 0xD2, 0x00]
    );
    // Framing the message's postcard bytes makes the same frame.
    assert_eq!(raw_frame(&[0x00]), frame_of(&Request::Info));
    // PredictPixels: tag 1, length varint, the bytes.
    let frame = frame_of(&Request::PredictPixels(&[7, 0, 255]));
    let mut encoded = frame[..frame.len() - 1].to_vec();
    let decoded = cobs::decode_in_place(&mut encoded).unwrap();
    let body = &encoded[..decoded];
    assert_eq!(&body[..5], &[0x01, 0x03, 7, 0, 255]);
    assert_eq!(
        &body[5..],
        &mlp_core::format::crc32(&body[..5]).to_le_bytes()
    );
}

#[test]
fn requests_and_responses_round_trip() {
    let pixels = [1u8, 2, 3, 4];
    let features: Vec<u8> = [0.5f32, -1.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    for request in [
        Request::Info,
        Request::PredictPixels(&pixels),
        Request::PredictFeatures(&features),
    ] {
        let mut frame = frame_of(&request);
        frame.pop();
        assert_eq!(decode_frame::<Request>(&mut frame), Ok(request));
    }
    let response = Response::Prediction(Answer {
        class: 1,
        logits: Logits::Int8 {
            logits: heapless::Vec::from_slice(&[-5, i32::MAX, i32::MIN]).unwrap(),
            scale: 0.125,
        },
        cycles: Some(12_345),
    });
    let (mut body, mut frame) = ([0; 256], [0; 256]);
    let encoded = encode_frame(&response, &mut body, &mut frame).unwrap();
    let mut copy = encoded[..encoded.len() - 1].to_vec();
    assert_eq!(decode_frame::<Response>(&mut copy), Ok(response));
}

#[test]
fn decoding_names_each_kind_of_damage() {
    let mut frame = frame_of(&Request::PredictPixels(&[9; 4]));
    frame.pop();
    // Any one changed byte is caught, by COBS or by the CRC, never read as a message.
    for at in 0..frame.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut damaged = frame.clone();
            damaged[at] ^= flip;
            let result = decode_frame::<Request>(&mut damaged);
            assert!(
                matches!(result, Err(FrameError::Cobs | FrameError::Checksum)),
                "byte {at} ^ {flip:#x}: {result:?}"
            );
        }
    }
    // Too short for a CRC.
    let mut short = [0x02, 0x07];
    assert_eq!(
        decode_frame::<Request>(&mut short),
        Err(FrameError::Checksum)
    );
    // Intact frames whose message is not a request: an unknown tag, bytes left over.
    for body in [&[0x07][..], &[0x00, 0x00], &[0x01, 0x05, 1, 2]] {
        let mut encoded = raw_frame(body);
        encoded.pop();
        assert_eq!(
            decode_frame::<Request>(&mut encoded),
            Err(FrameError::Message),
            "{body:?}"
        );
    }
}

#[test]
fn predictions_are_the_models_own_bit_for_bit() {
    let mut buffer = [0u8; 128];
    let file = doc_example_model(&mut buffer);
    let model = Model::<4, 2, 3>::load(file).unwrap();
    let mut server = f32_server(file, None);
    let mut scratch = Default::default();
    for pixels in [[0u8, 0, 0, 0], [255, 0, 128, 64], [1, 2, 3, 250], [255; 4]] {
        let expected = model.predict_pixels(&pixels, &mut scratch);
        let answers = exchange(&mut server, &frame_of(&Request::PredictPixels(&pixels)));
        let Response::Prediction(answer) = only(&answers) else {
            panic!("{answers:?}")
        };
        assert_eq!(answer.class as usize, expected.class);
        let Logits::F32(logits) = &answer.logits else {
            panic!()
        };
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(logits), bits(&expected.logits));
        assert_eq!(answer.cycles, None, "no cycle counter, no cycles");
    }
    // Features go through the model's input transform: for this model of pixels,
    // x / 255, so pixel values give the pixels' logits.
    let input = [255.0f32, 0.0, 128.0, 64.0];
    let expected = model.predict_pixels(&[255, 0, 128, 64], &mut scratch);
    assert_eq!(
        model.predict_features(&input, &mut scratch).logits,
        expected.logits
    );
    let features: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    let answers = exchange(&mut server, &frame_of(&Request::PredictFeatures(&features)));
    let Response::Prediction(Answer {
        logits: Logits::F32(logits),
        ..
    }) = only(&answers)
    else {
        panic!("{answers:?}")
    };
    assert_eq!(logits[0].to_bits(), expected.logits[0].to_bits());
    assert_eq!(logits[1].to_bits(), expected.logits[1].to_bits());
}

#[test]
fn int8_predictions_are_the_models_own_integers() {
    let mut buffer = [0u8; 160];
    let file = doc_example_int8_model(&mut buffer);
    let model = Int8Model::<4, 2, 3>::load(file).unwrap();
    let classifier = Int8Model::<4, 2, 3>::load(file).map(|model| Int8Classifier {
        model,
        scratch: Default::default(),
    });
    let mut server = Server::<RX, _>::new(IDENTITY, classifier, None);
    let pixels = [255u8, 0, 128, 64];
    let expected = model.predict_pixels(&pixels, &mut Default::default());
    let answers = exchange(&mut server, &frame_of(&Request::PredictPixels(&pixels)));
    let Response::Prediction(Answer {
        class,
        logits: Logits::Int8 { logits, scale },
        ..
    }) = only(&answers)
    else {
        panic!("{answers:?}")
    };
    assert_eq!(*class as usize, expected.class);
    assert_eq!(logits.as_slice(), expected.logits.as_slice());
    assert_eq!(scale.to_bits(), expected.output_scale.to_bits());
    // Features of a model of pixels are pixel values: the same integers as the bytes.
    let features: Vec<u8> = pixels
        .iter()
        .flat_map(|&p| f32::from(p).to_le_bytes())
        .collect();
    let answers = exchange(&mut server, &frame_of(&Request::PredictFeatures(&features)));
    let Response::Prediction(Answer {
        logits: Logits::Int8 { logits, .. },
        ..
    }) = only(&answers)
    else {
        panic!("{answers:?}")
    };
    assert_eq!(logits.as_slice(), expected.logits.as_slice());
    let answers = exchange(&mut server, &frame_of(&Request::Info));
    let Response::Info(info) = only(&answers) else {
        panic!()
    };
    let ModelStatus::Loaded(summary) = &info.model else {
        panic!()
    };
    assert_eq!(summary.element, Element::Int8);
    assert_eq!(summary.layer_sizes.as_slice(), &[4, 3, 2]);
}

#[test]
fn info_describes_the_firmware_and_the_model() {
    let mut buffer = [0u8; 128];
    let file = doc_example_model(&mut buffer);
    let mut server = f32_server(file, None);
    let answers = exchange(&mut server, &frame_of(&Request::Info));
    let Response::Info(info) = only(&answers) else {
        panic!("{answers:?}")
    };
    assert_eq!(info.protocol, PROTOCOL_VERSION);
    assert_eq!(info.identity, IDENTITY);
    assert_eq!(info.max_request_frame as usize, RX + 1);
    let view = mlp_core::format::ModelView::decode(file).unwrap();
    let ModelStatus::Loaded(summary) = &info.model else {
        panic!()
    };
    assert_eq!(summary.element, Element::F32);
    assert_eq!(summary.layer_sizes.as_slice(), view.layer_sizes());
    assert_eq!(summary.payload_crc, view.payload_crc());
}

#[test]
fn an_empty_or_corrupt_model_region_is_reported_and_served() {
    let erased = [0xffu8; 128];
    let mut server = f32_server(&erased, None);
    let answers = exchange(&mut server, &frame_of(&Request::Info));
    let Response::Info(info) = only(&answers) else {
        panic!()
    };
    let ModelStatus::Missing(reason) = &info.model else {
        panic!("{info:?}")
    };
    let expected = Model::<4, 2, 3>::load(&erased).err().unwrap().to_string();
    assert!(
        expected.starts_with(reason.as_str()) && !reason.is_empty(),
        "{reason} / {expected}"
    );
    let answers = exchange(&mut server, &frame_of(&Request::PredictPixels(&[0; 4])));
    assert_eq!(only(&answers), &Response::Error(ErrorAnswer::NoModel));

    // A model of another shape: the loader's reason, word for word.
    let mut buffer = [0u8; 128];
    let file = doc_example_model(&mut buffer);
    let other: Result<F32Classifier<'_, 5, 2, 3>, LoadError> =
        Model::<5, 2, 3>::load(file).map(|model| F32Classifier {
            model,
            scratch: Default::default(),
        });
    let reason = other.as_ref().err().unwrap().to_string();
    let mut server = Server::<RX, _>::new(IDENTITY, other, None);
    let answers = exchange(&mut server, &frame_of(&Request::Info));
    let Response::Info(info) = only(&answers) else {
        panic!()
    };
    assert_eq!(
        info.model,
        ModelStatus::Missing(reason.as_str().try_into().unwrap())
    );
}

#[test]
fn every_bad_frame_gets_an_error_answer_and_the_next_request_is_served() {
    let mut buffer = [0u8; 128];
    let file = doc_example_model(&mut buffer);
    let mut server = f32_server(file, None);
    let good = frame_of(&Request::PredictPixels(&[255, 0, 128, 64]));
    let truncated = {
        let mut frame = good.clone();
        frame.truncate(good.len() - 3);
        frame.push(0);
        frame
    };
    let unknown = raw_frame(&[0x09, 0x01]);
    let oversized: Vec<u8> = (0..RX + 40)
        .map(|i| 1 + (i % 250) as u8)
        .chain([0])
        .collect();
    let cases: [(&str, Vec<u8>, ErrorAnswer); 6] = [
        (
            "garbage",
            b"hello, device\n\0".to_vec(),
            ErrorAnswer::Garbled,
        ),
        ("truncated", truncated, ErrorAnswer::Garbled),
        (
            "oversized",
            oversized,
            ErrorAnswer::TooLong {
                limit: (RX + 1) as u32,
            },
        ),
        (
            "short image",
            frame_of(&Request::PredictPixels(&[1, 2, 3])),
            ErrorAnswer::WrongInputLength {
                expected: 4,
                found: 3,
            },
        ),
        (
            "long features",
            frame_of(&Request::PredictFeatures(&[0; 12])),
            ErrorAnswer::WrongInputLength {
                expected: 16,
                found: 12,
            },
        ),
        ("unknown request", unknown, ErrorAnswer::Malformed),
    ];
    let expected = exchange(&mut server, &good);
    assert!(matches!(only(&expected), Response::Prediction(_)));
    for (name, bytes, error) in cases {
        let answers = exchange(&mut server, &bytes);
        assert_eq!(only(&answers), &Response::Error(error), "{name}");
        assert_eq!(exchange(&mut server, &good), expected, "after {name}");
    }
    // Delimiters alone are resynchronisation, not frames: no answer.
    assert!(exchange(&mut server, &[0, 0, 0]).is_empty());
}

#[test]
fn a_moving_cycle_counter_is_reported() {
    static NOW: AtomicU32 = AtomicU32::new(u32::MAX - 100);
    fn tick() -> u32 {
        NOW.fetch_add(1000, Ordering::Relaxed)
    }
    fn frozen() -> u32 {
        0
    }
    let mut buffer = [0u8; 128];
    let file = doc_example_model(&mut buffer);
    let request = frame_of(&Request::PredictPixels(&[1; 4]));
    let answers = exchange(&mut f32_server(file, Some(tick)), &request);
    let Response::Prediction(answer) = only(&answers) else {
        panic!()
    };
    // Read twice, 1000 apart, across the counter's wrap.
    assert_eq!(answer.cycles, Some(1000));
    let answers = exchange(&mut f32_server(file, Some(frozen)), &request);
    let Response::Prediction(answer) = only(&answers) else {
        panic!()
    };
    assert_eq!(
        answer.cycles, None,
        "a counter that does not move is not measured"
    );
}

#[test]
fn random_streams_get_one_decodable_answer_per_frame() {
    let mut buffer = [0u8; 128];
    let file = doc_example_model(&mut buffer);
    let mut server = f32_server(file, None);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let good = frame_of(&Request::PredictPixels(&[3, 1, 4, 1]));
    let expected = exchange(&mut server, &good);
    for _ in 0..2000 {
        let len = (next() % 80) as usize;
        let mut stream: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Frames in the stream: one answer per delimiter that ends a non-empty run.
        stream.push(0);
        let frames = stream
            .split(|&b| b == 0)
            .take(stream.iter().filter(|&&b| b == 0).count())
            .filter(|run| !run.is_empty())
            .count();
        let answers = exchange(&mut server, &stream);
        assert_eq!(answers.len(), frames, "{stream:?}");
        assert_eq!(exchange(&mut server, &good), expected);
    }
}

#[test]
fn request_frame_len_bounds_every_image_frame() {
    // docs/PROTOCOL.md: a 784-pixel frame is at most 796 bytes on the line.
    assert_eq!(request_frame_len(784), 797);
    let mut longest = 0;
    for pattern in [
        [255u8; 784],
        [0; 784],
        core::array::from_fn(|i| (i % 256) as u8),
    ] {
        let frame = frame_of(&Request::PredictPixels(&pattern));
        assert!(frame.len() <= request_frame_len(784));
        longest = longest.max(frame.len());
    }
    assert_eq!(longest, 796);
    for payload in 0..1200 {
        let frame = frame_of(&Request::PredictFeatures(&vec![0x55; payload]));
        assert!(frame.len() <= request_frame_len(payload), "{payload}");
    }
}

#[test]
fn any_classifier_serves_both_kinds_of_model() {
    use mlp_embedded::protocol::AnyClassifier;
    let (mut f32_buffer, mut int8_buffer) = ([0u8; 128], [0u8; 160]);
    let f32_file = doc_example_model(&mut f32_buffer);
    let int8_file = doc_example_int8_model(&mut int8_buffer);
    for (file, element) in [(f32_file, Element::F32), (int8_file, Element::Int8)] {
        let model = AnyClassifier::<4, 2, 3>::load(file);
        let mut server = Server::<RX, _>::new(IDENTITY, model, None);
        let answers = exchange(&mut server, &frame_of(&Request::Info));
        let Response::Info(info) = only(&answers) else {
            panic!()
        };
        assert!(matches!(&info.model, ModelStatus::Loaded(s) if s.element == element));
        let answers = exchange(&mut server, &frame_of(&Request::PredictPixels(&[9; 4])));
        assert!(matches!(only(&answers), Response::Prediction(_)));
    }
    assert!(AnyClassifier::<4, 2, 3>::load(&[0xff; 64]).is_err());
}
