//! The frame decoder fed arbitrary bytes: as one buffer (`decode_frame`, `decode_body`) and as a
//! stream cut into chunks (`FrameReader`), for both directions' messages. Neither may panic, and
//! the two must agree on every message and on the first error.
//!
//! The first input byte is the chunk size (`1..=64`, from its low six bits); when it is `0xff`
//! the rest is repeated past 64 KiB so that the reader's buffer compaction runs too.

#![no_main]

use std::fmt::Debug;

use fedtwin_core::codec::{
    CodecError, FrameReader, HEADER_LEN, decode_body, decode_frame, encode_frame,
};
use fedtwin_core::message::{ClientMessage, ServerMessage};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Small, so that oversized frames are easy to reach.
const MAX_FRAME: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(control & 0x3f) + 1;
    let stream = if control == 0xff && !stream.is_empty() {
        stream.repeat(64 * 1024 / stream.len() + 2)
    } else {
        stream.to_vec()
    };

    check::<ClientMessage>(&stream, chunk);
    check::<ServerMessage>(&stream, chunk);
    let _ = decode_body::<ClientMessage>(&stream);
    let _ = decode_body::<ServerMessage>(&stream);
});

/// Decodes `stream` whole and in chunks and compares the outcomes. Messages are compared
/// encoded, so that a NaN in a request equals itself.
fn check<T: Serialize + DeserializeOwned + Debug>(stream: &[u8], chunk: usize) {
    let (whole, whole_error, used) = decode_whole::<T>(stream);
    let (chunked, chunked_error, finished) = decode_chunked::<T>(stream, chunk);
    let whole: Vec<Vec<u8>> = whole.iter().map(encode).collect();
    let chunked: Vec<Vec<u8>> = chunked.iter().map(encode).collect();
    assert_eq!(whole, chunked, "the chunked reader decoded other messages");
    assert_eq!(
        whole_error, chunked_error,
        "the chunked reader failed otherwise"
    );
    if whole_error.is_none() {
        assert_eq!(finished.is_ok(), used == stream.len(), "{finished:?}");
    }

    // What decodes re-encodes within the limit, and decodes back the same.
    for frame in &whole {
        let (again, again_used) = decode_frame::<T>(frame, MAX_FRAME)
            .expect("a re-encoded message decodes")
            .expect("a re-encoded frame is whole");
        assert_eq!(again_used, frame.len());
        assert_eq!(&encode(&again), frame, "{again:?}");
    }
}

/// One frame holding `message`; a decoded message always fits the limit again.
fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut frame = Vec::new();
    encode_frame(message, &mut frame, MAX_FRAME).expect("a decoded message re-encodes");
    frame
}

/// Every frame of `stream` by `decode_frame`, the first error, and the bytes used.
fn decode_whole<T: DeserializeOwned>(stream: &[u8]) -> (Vec<T>, Option<CodecError>, usize) {
    let mut messages = Vec::new();
    let mut used = 0;
    loop {
        match decode_frame::<T>(&stream[used..], MAX_FRAME) {
            Ok(Some((message, len))) => {
                assert!(
                    (HEADER_LEN..=stream.len() - used).contains(&len),
                    "used {len} of {} bytes",
                    stream.len() - used
                );
                messages.push(message);
                used += len;
            }
            Ok(None) => return (messages, None, used),
            Err(error) => return (messages, Some(error), used),
        }
    }
}

/// Every frame of `stream` fed to a `FrameReader` in chunks, the first error, and `finish`.
fn decode_chunked<T: DeserializeOwned>(
    stream: &[u8],
    chunk: usize,
) -> (Vec<T>, Option<CodecError>, Result<(), CodecError>) {
    let mut reader = FrameReader::new(MAX_FRAME);
    let mut messages = Vec::new();
    for piece in stream.chunks(chunk) {
        reader.extend(piece);
        loop {
            match reader.next_message::<T>() {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                // The stream cannot be resynchronized after an error.
                Err(error) => return (messages, Some(error), reader.finish()),
            }
        }
    }
    let finished = reader.finish();
    (messages, None, finished)
}
