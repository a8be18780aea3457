//! The agency's bet stream: every valid bet it will send, in file order,
//! held compactly so that any suffix can be sent again after a reconnect.
//!
//! A position in [`Bets`] is the bet's position in the agency's stream as
//! the protocol counts it (`BATCH.first`, `ACK.stored`). The text of all
//! bets lives in one `String` and each bet keeps offsets into it, about a
//! third of the memory of one `Bet` with three `String`s per row, which
//! matters for agencies with a million rows.

use lottery_proto::bets::bet::Bet;
use lottery_proto::wire::{BetRef, Date};

#[derive(Clone, Debug, Default)]
pub struct Bets {
    text: String,
    rows: Vec<Row>,
}

/// One bet: its three text fields are consecutive in [`Bets::text`] from
/// `start` (a valid bet's fields are at most 255 bytes each).
#[derive(Clone, Copy, Debug)]
struct Row {
    start: usize,
    first_name: u8,
    last_name: u8,
    document: u8,
    birthdate: Date,
    number: u16,
}

impl Bets {
    /// Appends a bet that passed `lottery_proto::bets::bet::parse_row`.
    pub fn push(&mut self, bet: &Bet) {
        let len = |s: &str| u8::try_from(s.len()).expect("a valid bet's fields fit a str8");
        let row = Row {
            start: self.text.len(),
            first_name: len(&bet.first_name),
            last_name: len(&bet.last_name),
            document: len(&bet.document),
            birthdate: bet.birthdate,
            number: bet.number,
        };
        self.text.push_str(&bet.first_name);
        self.text.push_str(&bet.last_name);
        self.text.push_str(&bet.document);
        self.rows.push(row);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// The bet at `position` of the stream, ready to encode.
    pub fn get(&self, position: usize) -> BetRef<'_> {
        let row = self.rows[position];
        let first_end = row.start + row.first_name as usize;
        let last_end = first_end + row.last_name as usize;
        let document_end = last_end + row.document as usize;
        BetRef {
            first_name: &self.text[row.start..first_end],
            last_name: &self.text[first_end..last_end],
            document: &self.text[last_end..document_end],
            birthdate: row.birthdate,
            number: row.number,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bet(first: &str, last: &str, document: &str, number: u16) -> Bet {
        Bet {
            first_name: first.into(),
            last_name: last.into(),
            document: document.into(),
            birthdate: Date {
                year: 1999,
                month: 3,
                day: 17,
            },
            number,
        }
    }

    #[test]
    fn bets_come_back_as_they_were_pushed() {
        let all = [
            bet("Santiago Lionel", "Lorca", "30904465", 7574),
            bet("Nicolás", "Núñez", "0001", 0),
            bet("A", "B", "9", 9999),
        ];
        let mut bets = Bets::default();
        for b in &all {
            bets.push(b);
        }
        assert_eq!(bets.len(), 3);
        for (i, b) in all.iter().enumerate() {
            assert_eq!(bets.get(i), b.as_ref());
        }
    }
}
