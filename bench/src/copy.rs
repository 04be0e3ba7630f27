//! Rows for `COPY … FROM STDIN (FORMAT binary)`: the fastest way to load millions of rows
//! (no text parsing on the server). Format: PostgreSQL docs, "COPY", "Binary Format".

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgPoolCopyExt;
use uuid::Uuid;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// Data is sent whenever this much has been encoded.
const CHUNK_BYTES: usize = 1 << 20;

/// Encodes tuples; values must follow the column list of the `COPY` statement in order.
pub struct CopyEncoder {
    buf: Vec<u8>,
}

impl CopyEncoder {
    pub fn new() -> CopyEncoder {
        let mut buf = Vec::with_capacity(CHUNK_BYTES + 4096);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        CopyEncoder { buf }
    }

    pub fn row(&mut self, fields: i16) -> &mut Self {
        self.buf.extend_from_slice(&fields.to_be_bytes());
        self
    }

    fn field(&mut self, bytes: &[u8]) -> &mut Self {
        // Fields here are at most a few dozen bytes.
        self.buf
            .extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        self.buf.extend_from_slice(bytes);
        self
    }

    pub fn null(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
        self
    }

    pub fn uuid(&mut self, v: Uuid) -> &mut Self {
        self.field(v.as_bytes())
    }

    pub fn int4(&mut self, v: i32) -> &mut Self {
        self.field(&v.to_be_bytes())
    }

    pub fn int2(&mut self, v: i16) -> &mut Self {
        self.field(&v.to_be_bytes())
    }

    pub fn float4(&mut self, v: f32) -> &mut Self {
        self.field(&v.to_be_bytes())
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.field(&[u8::from(v)])
    }

    pub fn bytea(&mut self, v: &[u8]) -> &mut Self {
        self.field(v)
    }

    pub fn text(&mut self, v: &str) -> &mut Self {
        self.field(v.as_bytes())
    }

    pub fn timestamptz(&mut self, v: DateTime<Utc>) -> &mut Self {
        self.field(&(v.timestamp_micros() - PG_EPOCH_UNIX_MICROS).to_be_bytes())
    }

    pub fn opt_timestamptz(&mut self, v: Option<DateTime<Utc>>) -> &mut Self {
        match v {
            Some(v) => self.timestamptz(v),
            None => self.null(),
        }
    }

    fn full(&self) -> bool {
        self.buf.len() >= CHUNK_BYTES
    }

    fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

/// Streams the rows `fill` encodes into `statement` (a `COPY … FROM STDIN (FORMAT binary)`).
/// `fill` is called until it returns false, and should encode about a chunk's worth of rows per
/// call so the data goes out while more is generated. Returns the number of rows copied.
pub async fn copy_in(
    pool: &PgPool,
    statement: &'static str,
    mut fill: impl FnMut(&mut CopyEncoder) -> bool,
) -> anyhow::Result<u64> {
    let mut copy = pool
        .copy_in_raw(statement)
        .await
        .with_context(|| format!("starting {statement}"))?;
    let mut encoder = CopyEncoder::new();
    let mut more = true;
    while more {
        while more && !encoder.full() {
            more = fill(&mut encoder);
        }
        if more {
            copy.send(encoder.buf.as_slice()).await?;
            encoder.buf.clear();
        }
    }
    copy.send(encoder.finish()).await?;
    copy.finish()
        .await
        .with_context(|| format!("finishing {statement}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_header_tuples_and_trailer_of_the_binary_format() {
        let mut e = CopyEncoder::new();
        e.row(3).int2(7).null().text("ab");
        let bytes = e.finish();
        let mut expected = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        expected.extend_from_slice(&[0, 3, 0, 0, 0, 2, 0, 7, 0xff, 0xff, 0xff, 0xff]);
        expected.extend_from_slice(&[0, 0, 0, 2, b'a', b'b', 0xff, 0xff]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn timestamps_count_microseconds_from_2000() {
        let mut e = CopyEncoder::new();
        let start = e.buf.len();
        e.timestamptz(DateTime::<Utc>::from_timestamp(946_684_801, 0).unwrap_or_default());
        assert_eq!(&e.buf[start + 4..], &1_000_000i64.to_be_bytes());
    }
}
