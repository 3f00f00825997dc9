//! Length-prefixed frames of postcard-encoded messages.
//!
//! A frame is a 4-byte little-endian body length followed by the body. The length is checked
//! against a maximum before any allocation, so a peer cannot make the receiver reserve memory by
//! announcing a huge frame. Every way a frame can be wrong is a [`CodecError`].

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Default largest frame body: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// The most value bytes one update or interaction may carry: the frame less room for what the
/// RTI adds when it delivers them (handles, the sender's name, the order), so that whatever
/// the RTI accepts it can also deliver.
pub const MAX_VALUE_BYTES: usize = DEFAULT_MAX_FRAME - 64 * 1024;

/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The frame announces (or would need) more bytes than allowed.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Announced or needed length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The body is not a valid message.
    #[error("malformed frame body: {0}")]
    Malformed(String),
    /// The body holds a message followed by unexpected bytes.
    #[error("frame body has {0} unexpected trailing bytes")]
    TrailingBytes(usize),
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame ({have} of {need} bytes)")]
    Truncated {
        /// Bytes present.
        have: usize,
        /// Bytes needed.
        need: usize,
    },
    /// A message could not be encoded.
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// Appends one frame holding `message` to `out`.
///
/// # Errors
///
/// [`CodecError::Encode`] if serialization fails, [`CodecError::FrameTooLarge`] if the body
/// exceeds `max_frame`. On error `out` is left as it was.
pub fn encode_frame<T: Serialize>(
    message: &T,
    out: &mut Vec<u8>,
    max_frame: usize,
) -> Result<(), CodecError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    let body = std::mem::take(out);
    let mut body = match postcard::to_extend(message, body) {
        Ok(body) => body,
        Err(e) => return Err(CodecError::Encode(e.to_string())),
    };
    let len = body.len() - start - HEADER_LEN;
    if len > max_frame || u32::try_from(len).is_err() {
        body.truncate(start);
        *out = body;
        return Err(CodecError::FrameTooLarge {
            len,
            max: max_frame,
        });
    }
    body[start..start + HEADER_LEN].copy_from_slice(&(len as u32).to_le_bytes());
    *out = body;
    Ok(())
}

/// Decodes the first frame of `buf`.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole frame, or the message and the number
/// of bytes it used.
///
/// # Errors
///
/// [`CodecError::FrameTooLarge`] as soon as the header announces too many bytes (before they
/// arrive), [`CodecError::Malformed`] or [`CodecError::TrailingBytes`] for a bad body.
pub fn decode_frame<T: DeserializeOwned>(
    buf: &[u8],
    max_frame: usize,
) -> Result<Option<(T, usize)>, CodecError> {
    let Some(len) = frame_len(buf, max_frame)? else {
        return Ok(None);
    };
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    decode_body(body).map(|message| Some((message, HEADER_LEN + len)))
}

/// The body length announced by the header at the start of `buf`, if the header is complete.
///
/// # Errors
///
/// [`CodecError::FrameTooLarge`].
pub fn frame_len(buf: &[u8], max_frame: usize) -> Result<Option<usize>, CodecError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = u32::from_le_bytes(*header) as usize;
    if len > max_frame {
        return Err(CodecError::FrameTooLarge {
            len,
            max: max_frame,
        });
    }
    Ok(Some(len))
}

/// Decodes one frame body (without its header).
///
/// # Errors
///
/// [`CodecError::Malformed`] or [`CodecError::TrailingBytes`].
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let (message, rest) =
        postcard::take_from_bytes(body).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes(rest.len()));
    }
    Ok(message)
}

/// Size at which [`encode_batch`] stops adding frames to one write.
pub const BATCH_BYTES: usize = 256 * 1024;

/// Encodes `first` and then whatever `more` has ready, up to about [`BATCH_BYTES`], into `out`
/// (cleared first), so that a writer sends everything queued in one write. Messages that
/// cannot be encoded are left out; their errors are returned for the caller to log.
pub fn encode_batch<T: Serialize>(
    first: T,
    mut more: impl FnMut() -> Option<T>,
    out: &mut Vec<u8>,
    max_frame: usize,
) -> Vec<CodecError> {
    out.clear();
    let mut errors = Vec::new();
    let mut next = Some(first);
    while let Some(message) = next {
        if let Err(error) = encode_frame(&message, out, max_frame) {
            errors.push(error);
        }
        next = if out.len() < BATCH_BYTES {
            more()
        } else {
            None
        };
    }
    errors
}

/// Reassembles frames from a byte stream that arrives in arbitrary pieces.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    max_frame: usize,
}

impl FrameReader {
    /// A reader that refuses frames above `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            max_frame,
        }
    }

    /// Adds received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, if one has arrived.
    ///
    /// # Errors
    ///
    /// Any [`CodecError`] of [`decode_frame`]; the stream cannot be resynchronized after one.
    pub fn next_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, CodecError> {
        match decode_frame(&self.buf[self.start..], self.max_frame)? {
            Some((message, used)) => {
                self.start += used;
                if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
                    self.buf.drain(..self.start);
                    self.start = 0;
                }
                Ok(Some(message))
            }
            None => Ok(None),
        }
    }

    /// Call when the stream has ended: an incomplete frame left over is an error.
    ///
    /// # Errors
    ///
    /// [`CodecError::Truncated`].
    pub fn finish(&self) -> Result<(), CodecError> {
        let have = self.buf.len() - self.start;
        if have == 0 {
            return Ok(());
        }
        let need = match frame_len(&self.buf[self.start..], self.max_frame) {
            Ok(Some(len)) => HEADER_LEN + len,
            _ => HEADER_LEN,
        };
        Err(CodecError::Truncated { have, need })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{AdvanceKind, ClientMessage, Payload, Request, ServerMessage};
    use crate::model::{AttributeHandle, ObjectInstanceHandle};
    use crate::time::SimTime;
    use proptest::prelude::*;

    fn update() -> ClientMessage {
        ClientMessage {
            id: 42,
            request: Request::UpdateAttributes {
                object: ObjectInstanceHandle(3),
                values: vec![(AttributeHandle(0), Payload::from(vec![1, 2, 3]))],
                timestamp: Some(SimTime::from_ticks(1_000)),
            },
        }
    }

    #[test]
    fn round_trips_a_frame() {
        let mut out = Vec::new();
        encode_frame(&update(), &mut out, DEFAULT_MAX_FRAME).unwrap();
        let (back, used): (ClientMessage, usize) =
            decode_frame(&out, DEFAULT_MAX_FRAME).unwrap().unwrap();
        assert_eq!(back, update());
        assert_eq!(used, out.len());
    }

    #[test]
    fn incomplete_input_waits() {
        let mut out = Vec::new();
        encode_frame(&update(), &mut out, DEFAULT_MAX_FRAME).unwrap();
        for cut in 0..out.len() {
            let r: Option<(ClientMessage, usize)> =
                decode_frame(&out[..cut], DEFAULT_MAX_FRAME).unwrap();
            assert!(r.is_none(), "decoded from {cut} bytes");
        }
    }

    #[test]
    fn oversized_header_is_refused_before_the_body_arrives() {
        let header = (1u32 << 30).to_le_bytes();
        let r: Result<Option<(ClientMessage, usize)>, _> = decode_frame(&header, 1024);
        assert_eq!(
            r,
            Err(CodecError::FrameTooLarge {
                len: 1 << 30,
                max: 1024
            })
        );
    }

    #[test]
    fn encoding_above_the_limit_fails_and_leaves_output_untouched() {
        let mut out = vec![9];
        let big = ClientMessage {
            id: 1,
            request: Request::RegisterSyncPoint {
                label: "x".into(),
                tag: Payload::from(vec![0; 2048]),
                federates: vec![],
            },
        };
        assert!(matches!(
            encode_frame(&big, &mut out, 1024),
            Err(CodecError::FrameTooLarge { .. })
        ));
        assert_eq!(out, vec![9]);
    }

    #[test]
    fn garbage_and_trailing_bytes_are_typed_errors() {
        let mut frame = Vec::new();
        frame.extend_from_slice(&3u32.to_le_bytes());
        frame.extend_from_slice(&[0xff, 0xff, 0xff]);
        let r: Result<Option<(ServerMessage, usize)>, _> = decode_frame(&frame, 1024);
        assert!(matches!(r, Err(CodecError::Malformed(_))));

        let body = postcard::to_stdvec(&update()).unwrap();
        let mut padded = body.clone();
        padded.push(0);
        let r: Result<ClientMessage, _> = decode_body(&padded);
        assert_eq!(r, Err(CodecError::TrailingBytes(1)));
    }

    #[test]
    fn reader_reassembles_split_frames_and_reports_truncation() {
        let mut stream = Vec::new();
        for id in 0..5 {
            let m = ClientMessage {
                id,
                request: Request::Advance {
                    kind: AdvanceKind::NextEvent,
                    time: SimTime::ZERO,
                },
            };
            encode_frame(&m, &mut stream, DEFAULT_MAX_FRAME).unwrap();
        }
        let mut reader = FrameReader::new(DEFAULT_MAX_FRAME);
        let mut ids = Vec::new();
        for chunk in stream[..stream.len() - 1].chunks(3) {
            reader.extend(chunk);
            while let Some(m) = reader.next_message::<ClientMessage>().unwrap() {
                ids.push(m.id);
            }
        }
        assert_eq!(ids, vec![0, 1, 2, 3]);
        assert!(matches!(reader.finish(), Err(CodecError::Truncated { .. })));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        // The decoder is fed arbitrary bytes: it must return, never panic or over-allocate.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_frame::<ClientMessage>(&bytes, 1024);
            let _ = decode_frame::<ServerMessage>(&bytes, 1024);
            let _ = decode_body::<ClientMessage>(&bytes);
        }

        // A stream of valid frames, frames with arbitrary bodies and loose bytes, cut into
        // arbitrary chunks: the reader yields what decoding the whole buffer frame by frame
        // yields, up to the same first error, and never panics.
        #[test]
        fn reader_agrees_with_whole_buffer_decoding(
            parts in proptest::collection::vec(stream_part(), 0..12),
            chunk in 1usize..48,
        ) {
            let stream = parts.concat();
            let (whole, whole_error, used) = decode_whole(&stream);
            let mut reader = FrameReader::new(1024);
            let mut read = Vec::new();
            let mut read_error = None;
            'stream: for piece in stream.chunks(chunk) {
                reader.extend(piece);
                loop {
                    match reader.next_message::<ClientMessage>() {
                        Ok(Some(message)) => read.push(message),
                        Ok(None) => break,
                        Err(error) => {
                            read_error = Some(error);
                            break 'stream;
                        }
                    }
                }
            }
            // Compared encoded: an arbitrary body may decode to a NaN, which equals nothing.
            let encoded = |messages: &[ClientMessage]| -> Vec<Vec<u8>> {
                messages.iter().map(|m| postcard::to_stdvec(m).unwrap()).collect()
            };
            prop_assert_eq!(encoded(&read), encoded(&whole));
            prop_assert_eq!(&read_error, &whole_error);
            if read_error.is_none() {
                prop_assert_eq!(reader.finish().is_ok(), used == stream.len());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        // More than 64 KiB of small frames in uneven chunks: the reader compacts its buffer on
        // the way and still yields every message, in order.
        #[test]
        fn reader_reassembles_long_streams(
            chunks in proptest::collection::vec(1usize..4096, 1..32),
        ) {
            let mut stream = Vec::new();
            for id in 0..12_000 {
                let message = ClientMessage {
                    id,
                    request: Request::Resign,
                };
                encode_frame(&message, &mut stream, DEFAULT_MAX_FRAME).unwrap();
            }
            prop_assert!(stream.len() > 64 * 1024);
            let mut reader = FrameReader::new(DEFAULT_MAX_FRAME);
            let mut next = 0;
            let mut rest = &stream[..];
            for &size in chunks.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (piece, tail) = rest.split_at(size.min(rest.len()));
                rest = tail;
                reader.extend(piece);
                while let Some(message) = reader.next_message::<ClientMessage>().unwrap() {
                    prop_assert_eq!(message.id, next);
                    next += 1;
                }
            }
            prop_assert_eq!(next, 12_000);
            prop_assert_eq!(reader.finish(), Ok(()));
        }
    }

    /// Mostly valid frames; else a frame with an arbitrary body that may announce a few bytes
    /// more than it has or more than the limit, or loose bytes.
    fn stream_part() -> impl Strategy<Value = Vec<u8>> {
        let valid = (any::<u64>(), any::<i64>()).prop_map(|(id, ticks)| {
            let message = ClientMessage {
                id,
                request: Request::Advance {
                    kind: AdvanceKind::TimeAdvance,
                    time: SimTime::from_ticks(ticks),
                },
            };
            let mut frame = Vec::new();
            encode_frame(&message, &mut frame, 1024).unwrap();
            frame
        });
        let arbitrary = (proptest::collection::vec(any::<u8>(), 0..32), 0usize..4).prop_map(
            |(body, missing)| {
                let len = if missing == 3 {
                    1025
                } else {
                    body.len() + missing
                };
                let mut frame = (len as u32).to_le_bytes().to_vec();
                frame.extend_from_slice(&body);
                frame
            },
        );
        prop_oneof![
            4 => valid,
            1 => arbitrary,
            1 => proptest::collection::vec(any::<u8>(), 0..8),
        ]
    }

    /// Every frame of `stream` decoded in place, the first error, and the bytes used.
    fn decode_whole(stream: &[u8]) -> (Vec<ClientMessage>, Option<CodecError>, usize) {
        let mut messages = Vec::new();
        let mut used = 0;
        loop {
            match decode_frame::<ClientMessage>(&stream[used..], 1024) {
                Ok(Some((message, len))) => {
                    messages.push(message);
                    used += len;
                }
                Ok(None) => return (messages, None, used),
                Err(error) => return (messages, Some(error), used),
            }
        }
    }
}
