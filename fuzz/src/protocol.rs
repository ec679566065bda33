//! The check of the `protocol` target: the device side of the serial protocol
//! (`mlp_embedded::protocol::Server`) on an arbitrary byte stream.
//!
//! Whatever arrives, the server answers every frame (every run of non-zero bytes ended
//! by `0x00`) with exactly one frame that decodes as a `Response`, never panics, and
//! afterwards answers a valid request exactly as a fresh server does. A stream that
//! happens to decode as a request re-encodes to a frame that decodes to the same request.

use mlp_embedded::protocol::{
    decode_frame, encode_frame, request_frame_len, ErrorAnswer, F32Classifier, Identity, Request,
    Response, Server, MAX_RESPONSE_FRAME,
};
use mlp_embedded::{doc_example_model, Model};

const RX: usize = request_frame_len(16) - 1;

/// Runs the check on one input; panics on a violated property.
pub fn check_protocol_stream(data: &[u8]) {
    let mut buffer = [0u8; 128];
    let file = doc_example_model(&mut buffer);
    let serve = || {
        let model = Model::<4, 2, 3>::load(file).map(|model| F32Classifier {
            model,
            scratch: Default::default(),
        });
        let identity = Identity {
            firmware: "fuzz",
            board: "host",
        };
        Server::<RX, _>::new(identity, model, None)
    };
    let mut server = serve();
    let (mut body, mut frame) = ([0u8; MAX_RESPONSE_FRAME], [0u8; MAX_RESPONSE_FRAME]);

    let mut run = 0usize;
    for &byte in data {
        let reply = server
            .receive(byte, &mut body, &mut frame)
            .map(<[u8]>::to_vec);
        if byte != 0 {
            run += 1;
            assert!(reply.is_none(), "an answer before the frame ended");
            continue;
        }
        match (run, reply) {
            (0, None) => {}
            (0, Some(_)) => panic!("an answer to an empty frame"),
            (_, None) => panic!("no answer to a frame of {run} bytes"),
            (_, Some(mut reply)) => {
                assert_eq!(reply.pop(), Some(0));
                decode_frame::<Response>(&mut reply).expect("the answer decodes");
            }
        }
        run = 0;
    }

    // Whatever came before, a delimiter and a valid request get a fresh server's answer.
    let (mut request_body, mut request_frame) = ([0u8; 64], [0u8; 64]);
    let request = encode_frame(
        &Request::PredictPixels(&[255, 0, 128, 64]),
        &mut request_body,
        &mut request_frame,
    )
    .unwrap();
    let answer = |server: &mut Server<RX, _>, body: &mut [u8], frame: &mut [u8]| {
        let mut last = None;
        for &byte in [0].iter().chain(request) {
            if let Some(reply) = server.receive(byte, body, frame) {
                last = Some(reply.to_vec());
            }
        }
        last.expect("an answer")
    };
    let expected = answer(&mut serve(), &mut body, &mut frame);
    assert_eq!(answer(&mut server, &mut body, &mut frame), expected);

    // The stream as a message in an intact frame, so that the request decoder sees
    // bytes past the CRC: one answer, and not "damaged" when the bytes are a request.
    let mut checked = data.to_vec();
    checked.extend(mlp_core::format::crc32(data).to_le_bytes());
    let mut framed = cobs::encode_vec(&checked);
    framed.push(0);
    let mut replies = Vec::new();
    let mut fresh = serve();
    for &byte in &framed {
        if let Some(reply) = fresh.receive(byte, &mut body, &mut frame) {
            replies.push(reply.to_vec());
        }
    }
    assert_eq!(replies.len(), 1, "one answer to an intact frame");
    let mut reply = replies.pop().unwrap();
    reply.pop();
    let response = decode_frame::<Response>(&mut reply).expect("the answer decodes");
    let is_request = matches!(postcard::take_from_bytes::<Request>(data), Ok((_, [])));
    let refused = matches!(
        response,
        Response::Error(ErrorAnswer::Malformed | ErrorAnswer::Garbled)
    );
    if framed.len() <= RX + 1 {
        assert_eq!(refused, !is_request, "{response:?}");
    }

    // The stream itself, read as one frame: a request that decodes re-encodes the same.
    let mut copy = data.to_vec();
    if let Ok(request) = decode_frame::<Request>(&mut copy) {
        let (mut body, mut frame) = (vec![0u8; data.len() + 16], vec![0u8; data.len() + 32]);
        let mut again = encode_frame(&request, &mut body, &mut frame)
            .unwrap()
            .to_vec();
        again.pop();
        assert_eq!(decode_frame::<Request>(&mut again), Ok(request));
    }
}
