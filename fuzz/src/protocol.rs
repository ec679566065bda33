//! The check of the `protocol` target: the device side of the serial protocol
//! (`mlp_embedded::protocol::Server`) on an arbitrary byte stream.
//!
//! Whatever arrives, the server answers every frame (every run of non-zero bytes ended
//! by `0x00`) with exactly one frame that decodes as a `Response`, never panics, and
//! afterwards answers a valid request exactly as a fresh server does. A stream that
//! happens to decode as a request re-encodes to a frame that decodes to the same request.

use std::sync::OnceLock;

use mlp_embedded::protocol::{
    decode_frame, encode_frame, frame_message, request_frame_len, Classifier, ErrorAnswer,
    F32Classifier, Identity, Request, Response, Server, MAX_RESPONSE_FRAME,
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

    // Whatever came before, a delimiter and a valid request get a fresh server's answer
    // (computed once: it does not depend on the input).
    static EXPECTED: OnceLock<Vec<u8>> = OnceLock::new();
    let (mut request_body, mut request_frame) = ([0u8; 64], [0u8; 64]);
    let request = encode_frame(
        &Request::PredictPixels(&[255, 0, 128, 64]),
        &mut request_body,
        &mut request_frame,
    )
    .unwrap();
    let mut answer = |server: &mut Server<RX, _>| {
        // The delimiter ends whatever frame the stream left unfinished (its answer was
        // checked above for the stream's own delimiters; this one is dropped).
        feed(server, &[0], &mut body, &mut frame);
        let mut replies = feed(server, request, &mut body, &mut frame);
        assert_eq!(replies.len(), 1, "one answer to one request");
        replies.pop().unwrap()
    };
    let expected = EXPECTED.get_or_init(|| answer(&mut serve()));
    assert_eq!(&answer(&mut server), expected);

    // The stream as a message in an intact frame, so that the request decoder sees
    // bytes past the CRC: one answer, and not "damaged" when the bytes are a request.
    // The server is back in its fresh state after the answer above.
    let capacity = data.len() + data.len() / 254 + 8;
    let (mut message_body, mut message_frame) = (vec![0u8; capacity], vec![0u8; capacity]);
    let framed = frame_message(data, &mut message_body, &mut message_frame).unwrap();
    let mut replies = feed(&mut server, framed, &mut body, &mut frame);
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

/// Sends `bytes` one at a time and returns every answer.
fn feed<C: Classifier>(
    server: &mut Server<RX, C>,
    bytes: &[u8],
    body: &mut [u8],
    frame: &mut [u8],
) -> Vec<Vec<u8>> {
    bytes
        .iter()
        .filter_map(|&byte| server.receive(byte, body, frame).map(<[u8]>::to_vec))
        .collect()
}
