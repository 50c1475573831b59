use std::collections::HashMap;

use serde_bencode::value::Value;
use sha1::{Digest, Sha1};

use super::*;

fn bytes(s: &str) -> Value {
    Value::Bytes(s.as_bytes().to_vec())
}

fn dict(entries: Vec<(&str, Value)>) -> Value {
    Value::Dict(
        entries
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect::<HashMap<_, _>>(),
    )
}

/// A valid multi-file info dictionary: files of 5 and 7 bytes, pieces of 4.
fn multi_info() -> Vec<(&'static str, Value)> {
    vec![
        ("name", bytes("dir")),
        ("piece length", Value::Int(4)),
        ("pieces", Value::Bytes(vec![7; 60])),
        (
            "files",
            Value::List(vec![
                dict(vec![
                    ("length", Value::Int(5)),
                    ("path", Value::List(vec![bytes("a"), bytes("x.bin")])),
                ]),
                dict(vec![
                    ("length", Value::Int(7)),
                    ("path", Value::List(vec![bytes("b.bin")])),
                ]),
            ]),
        ),
    ]
}

fn torrent(info: Vec<(&str, Value)>) -> Vec<u8> {
    bencode::encode(&dict(vec![
        ("announce", bytes("http://t/announce")),
        ("info", dict(info)),
    ]))
    .unwrap()
}

fn with(
    mut info: Vec<(&'static str, Value)>,
    key: &'static str,
    value: Value,
) -> Vec<(&'static str, Value)> {
    info.retain(|(k, _)| *k != key);
    info.push((key, value));
    info
}

fn without(mut info: Vec<(&'static str, Value)>, key: &str) -> Vec<(&'static str, Value)> {
    info.retain(|(k, _)| *k != key);
    info
}

fn error_of(info: Vec<(&str, Value)>) -> MetainfoError {
    Metainfo::from_bytes(&torrent(info)).unwrap_err()
}

fn with_path(components: Vec<Value>) -> Vec<(&'static str, Value)> {
    with(
        multi_info(),
        "files",
        Value::List(vec![dict(vec![
            ("length", Value::Int(12)),
            ("path", Value::List(components)),
        ])]),
    )
}

#[test]
fn parses_a_multi_file_torrent_with_offsets() {
    let meta = Metainfo::from_bytes(&torrent(multi_info())).unwrap();
    assert_eq!(meta.info.name, "dir");
    assert!(meta.info.multi_file);
    assert_eq!(meta.info.total_length, 12);
    assert_eq!(meta.info.piece_count(), 3);
    assert_eq!(meta.info.files[0].path, ["dir", "a", "x.bin"]);
    assert_eq!(meta.info.files[1].offset, 5);
    assert_eq!(meta.info.piece_size(2), Some(4));
    assert_eq!(meta.info.piece_size(3), None);
    assert_eq!(
        meta.tracker_tiers(),
        vec![vec!["http://t/announce".to_string()]]
    );
}

#[test]
fn parses_a_single_file_torrent_and_its_short_last_piece() {
    let info = vec![
        ("name", bytes("f.bin")),
        ("piece length", Value::Int(4)),
        ("pieces", Value::Bytes(vec![1; 40])),
        ("length", Value::Int(6)),
        ("private", Value::Int(1)),
        ("source", bytes("lab")),
    ];
    let meta = Metainfo::from_bytes(&torrent(info)).unwrap();
    assert!(!meta.info.multi_file);
    assert_eq!(meta.info.files[0].path, ["f.bin"]);
    assert_eq!(meta.info.piece_size(1), Some(2));
    assert!(meta.info.private);
    assert_eq!(meta.info.source.as_deref(), Some("lab"));
}

#[test]
fn info_hash_is_taken_over_the_original_bytes_even_unsorted_with_extra_keys() {
    // Keys out of order and an unknown key: a re-encoding would sort them and
    // change the hash.
    let info =
        b"d6:lengthi3e4:name1:f12:piece lengthi4e6:pieces20:aaaaaaaaaaaaaaaaaaaa5:zzzzzi1e1:ai2ee";
    let mut file = b"d8:announce8:http://x4:info".to_vec();
    file.extend_from_slice(info);
    file.extend_from_slice(b"7:unknownl1:aee");
    let meta = Metainfo::from_bytes(&file).unwrap();
    assert_eq!(meta.info_hash.0, <[u8; 20]>::from(Sha1::digest(info)));
    assert_eq!(meta.raw_info(), info);
    assert!(meta.info.extra.contains_key(&b"zzzzz"[..]));
    assert!(meta.extra().contains_key(&b"unknown"[..]));
}

#[test]
fn unknown_keys_and_the_info_bytes_survive_a_round_trip() {
    let mut root = HashMap::new();
    root.insert(b"announce".to_vec(), bytes("http://a"));
    root.insert(
        b"x-custom".to_vec(),
        Value::List(vec![Value::Int(1), bytes("two")]),
    );
    root.insert(
        b"info".to_vec(),
        dict(with(multi_info(), "x-info-extra", bytes("kept"))),
    );
    root.insert(
        b"announce-list".to_vec(),
        Value::List(vec![
            Value::List(vec![bytes("http://a")]),
            Value::List(vec![bytes("http://b")]),
        ]),
    );
    root.insert(b"url-list".to_vec(), bytes("http://seed/"));
    let original = bencode::encode(&Value::Dict(root)).unwrap();
    let meta = Metainfo::from_bytes(&original).unwrap();
    assert_eq!(meta.url_list, ["http://seed/"]);
    assert_eq!(meta.tracker_tiers().len(), 2);
    let rewritten = meta.to_bytes();
    let again = Metainfo::from_bytes(&rewritten).unwrap();
    assert_eq!(
        again,
        Metainfo {
            url_list: meta.url_list.clone(),
            ..meta.clone()
        }
    );
    assert_eq!(
        again.extra().get(&b"x-custom"[..]),
        meta.extra().get(&b"x-custom"[..])
    );
    assert_eq!(again.info_hash, meta.info_hash);
}

#[test]
fn magnet_link_carries_hash_name_and_trackers() {
    let meta =
        Metainfo::from_bytes(&torrent(with(multi_info(), "name", bytes("my file")))).unwrap();
    assert_eq!(
        meta.magnet_link(),
        format!(
            "magnet:?xt=urn:btih:{}&dn=my%20file&tr=http%3A%2F%2Ft%2Fannounce",
            meta.info_hash.to_hex()
        )
    );
}

// One test per class of malformed input, each asserting its specific error.

#[test]
fn not_bencode() {
    assert!(matches!(
        Metainfo::from_bytes(b"<html>"),
        Err(MetainfoError::Bencode(_))
    ));
    assert!(matches!(
        Metainfo::from_bytes(b"d4:infod"),
        Err(MetainfoError::Bencode(BencodeError::UnexpectedEnd(8)))
    ));
}

#[test]
fn not_a_dictionary_at_the_root() {
    assert!(matches!(
        Metainfo::from_bytes(b"li1ee"),
        Err(MetainfoError::WrongType { .. })
    ));
}

#[test]
fn missing_fields() {
    assert_eq!(
        Metainfo::from_bytes(b"d8:announce1:xe").unwrap_err(),
        MetainfoError::Missing {
            field: "info".into()
        }
    );
    assert_eq!(
        error_of(without(multi_info(), "name")),
        MetainfoError::Missing {
            field: "info.name".into()
        }
    );
    assert_eq!(
        error_of(without(multi_info(), "pieces")),
        MetainfoError::Missing {
            field: "info.pieces".into()
        }
    );
    assert_eq!(
        error_of(without(multi_info(), "files")),
        MetainfoError::Missing {
            field: "info.length".into()
        }
    );
}

#[test]
fn wrong_types() {
    assert_eq!(
        error_of(with(multi_info(), "piece length", bytes("4"))),
        MetainfoError::WrongType {
            field: "info.piece length".into(),
            expected: "an integer",
            found: "a byte string"
        }
    );
    assert_eq!(
        error_of(with(multi_info(), "files", Value::Int(3))),
        MetainfoError::WrongType {
            field: "info.files".into(),
            expected: "a list",
            found: "an integer"
        }
    );
    assert_eq!(
        error_of(with_path(vec![Value::Int(1)])),
        MetainfoError::WrongType {
            field: "info.files[0].path[0]".into(),
            expected: "a byte string",
            found: "an integer"
        }
    );
    let bad_info = bencode::encode(&dict(vec![("info", Value::List(vec![]))])).unwrap();
    assert_eq!(
        Metainfo::from_bytes(&bad_info).unwrap_err(),
        MetainfoError::WrongType {
            field: "info".into(),
            expected: "a dictionary",
            found: "a list"
        }
    );
}

#[test]
fn pieces_not_a_multiple_of_20() {
    assert_eq!(
        error_of(with(multi_info(), "pieces", Value::Bytes(vec![0; 59]))),
        MetainfoError::PiecesNotMultipleOf20(59)
    );
}

#[test]
fn piece_count_not_matching_total_length() {
    assert_eq!(
        error_of(with(multi_info(), "pieces", Value::Bytes(vec![0; 80]))),
        MetainfoError::PieceCountMismatch {
            found: 4,
            expected: 3,
            total_length: 12,
            piece_length: 4
        }
    );
}

#[test]
fn zero_negative_or_absurd_piece_length() {
    for bad in [0, -4, MAX_PIECE_LENGTH as i64 + 1, i64::MAX] {
        assert_eq!(
            error_of(with(multi_info(), "piece length", Value::Int(bad))),
            MetainfoError::BadPieceLength(bad)
        );
    }
}

#[test]
fn nesting_deeper_than_the_limit() {
    let mut file = b"d4:info".to_vec();
    file.extend(std::iter::repeat_n(b'l', 100_000));
    assert_eq!(
        Metainfo::from_bytes(&file).unwrap_err(),
        MetainfoError::Bencode(BencodeError::TooDeep(7 + bencode::MAX_DEPTH - 1))
    );
}

#[test]
fn torrent_file_over_the_size_limit() {
    let huge = vec![b'd'; MAX_TORRENT_BYTES as usize + 1];
    assert_eq!(
        Metainfo::from_bytes(&huge).unwrap_err(),
        MetainfoError::TooLarge {
            size: MAX_TORRENT_BYTES + 1
        }
    );
}

#[test]
fn file_length_negative_or_over_the_limit() {
    let info = with(without(multi_info(), "files"), "length", Value::Int(-1));
    assert_eq!(
        error_of(info),
        MetainfoError::BadFileLength {
            field: "info.length".into(),
            length: -1
        }
    );
    let huge = MAX_TOTAL_LENGTH as i64 + 1;
    assert_eq!(
        error_of(with(
            multi_info(),
            "files",
            Value::List(vec![dict(vec![
                ("length", Value::Int(huge)),
                ("path", Value::List(vec![bytes("a")]))
            ])])
        )),
        MetainfoError::BadFileLength {
            field: "info.files[0].length".into(),
            length: huge
        }
    );
}

#[test]
fn total_length_overflow_across_files() {
    let big = Value::Int(MAX_TOTAL_LENGTH as i64);
    let files = Value::List(vec![
        dict(vec![
            ("length", big.clone()),
            ("path", Value::List(vec![bytes("a")])),
        ]),
        dict(vec![
            ("length", big),
            ("path", Value::List(vec![bytes("b")])),
        ]),
    ]);
    assert_eq!(
        error_of(with(multi_info(), "files", files)),
        MetainfoError::TotalTooLarge
    );
}

#[test]
fn empty_torrent_and_empty_file_list() {
    let info = with(
        with(without(multi_info(), "files"), "length", Value::Int(0)),
        "pieces",
        Value::Bytes(vec![]),
    );
    assert_eq!(error_of(info), MetainfoError::Empty);
    assert_eq!(
        error_of(with(multi_info(), "files", Value::List(vec![]))),
        MetainfoError::NoFiles
    );
    assert_eq!(
        error_of(with(multi_info(), "length", Value::Int(12))),
        MetainfoError::LengthAndFiles
    );
}

#[test]
fn path_traversal_in_every_form_is_refused() {
    let cases: &[(&str, &str)] = &[
        ("", "is empty"),
        (".", "is a relative reference"),
        ("..", "is a relative reference"),
        ("/etc", "is absolute"),
        ("a/../../b", "holds `/`"),
        ("..\\..\\x", "holds `\\`"),
        ("a\0b", "holds NUL"),
    ];
    for (component, reason) in cases {
        let err = error_of(with_path(vec![bytes("ok"), bytes(component)]));
        assert_eq!(
            err,
            MetainfoError::BadPath {
                field: "info.files[0].path[1]".into(),
                component: component.to_string(),
                reason
            },
            "{component:?}"
        );
        // The same rules hold for the torrent's name, which names the folder.
        let err = error_of(with(multi_info(), "name", bytes(component)));
        assert_eq!(
            err,
            MetainfoError::BadPath {
                field: "info.name".into(),
                component: component.to_string(),
                reason
            }
        );
    }
    let long = "x".repeat(MAX_COMPONENT_BYTES + 1);
    assert!(matches!(
        error_of(with_path(vec![bytes(&long)])),
        MetainfoError::BadPath {
            reason: "is over 255 bytes",
            ..
        }
    ));
    let deep: Vec<Value> = (0..30).map(|_| bytes(&"y".repeat(200))).collect();
    assert_eq!(
        error_of(with_path(deep)),
        MetainfoError::PathTooLong {
            field: "info.files[0].path".into()
        }
    );
    assert!(matches!(
        error_of(with_path(vec![])),
        MetainfoError::BadPath { .. }
    ));
}

#[test]
fn non_utf8_names_are_refused() {
    let info = with(multi_info(), "name", Value::Bytes(vec![0xff, 0xfe]));
    assert_eq!(
        error_of(info),
        MetainfoError::NotUtf8 {
            field: "info.name".into()
        }
    );
}

#[test]
fn duplicate_paths_and_files_inside_files_are_refused() {
    let file = |path: Vec<&str>| {
        dict(vec![
            ("length", Value::Int(6)),
            ("path", Value::List(path.into_iter().map(bytes).collect())),
        ])
    };
    let dup = Value::List(vec![file(vec!["a"]), file(vec!["a"])]);
    assert_eq!(
        error_of(with(multi_info(), "files", dup)),
        MetainfoError::PathConflict("dir/a".into())
    );
    let nested = Value::List(vec![file(vec!["a"]), file(vec!["a", "b"])]);
    assert_eq!(
        error_of(with(multi_info(), "files", nested)),
        MetainfoError::PathConflict("dir/a".into())
    );
}

#[test]
fn every_error_message_names_what_is_wrong() {
    let err = error_of(with_path(vec![bytes("..")]));
    assert_eq!(
        err.to_string(),
        "`info.files[0].path[0]`: path component \"..\" is a relative reference"
    );
    let err = error_of(with(multi_info(), "pieces", Value::Bytes(vec![0; 59])));
    assert_eq!(
        err.to_string(),
        "`info.pieces` is 59 bytes long, not a multiple of 20"
    );
}

#[test]
fn metadata_from_peers_is_validated_like_a_torrent_file() {
    let file = Metainfo::from_bytes(include_bytes!("../../../torrents/seed-1g.torrent")).unwrap();
    let tiers = vec![
        vec!["http://127.0.0.1:1/announce".to_owned()],
        vec!["udp://127.0.0.1:2".to_owned()],
    ];
    let fetched = Metainfo::from_info_bytes(file.raw_info(), tiers.clone()).unwrap();
    assert_eq!(fetched.info_hash, file.info_hash);
    assert_eq!(fetched.info, file.info);
    assert_eq!(fetched.tracker_tiers(), tiers);
    // Written out and read back, it is the same torrent.
    let again = Metainfo::from_bytes(&fetched.to_bytes()).unwrap();
    assert_eq!(
        (again.info_hash, again.tracker_tiers()),
        (file.info_hash, tiers)
    );
    let alone = Metainfo::from_info_bytes(file.raw_info(), vec![]).unwrap();
    assert!(alone.tracker_tiers().is_empty() && alone.announce.is_none());

    // An info dictionary a `.torrent` would be refused for is refused here.
    let escaping = torrent(with(multi_info(), "name", bytes("..")));
    let spans = bencode::dict_value_spans(&escaping).unwrap();
    let (_, range) = spans.iter().find(|(k, _)| *k == b"info").unwrap();
    assert!(matches!(
        Metainfo::from_info_bytes(&escaping[range.clone()], vec![]),
        Err(MetainfoError::BadPath { .. })
    ));
    assert!(Metainfo::from_info_bytes(b"i1e", vec![]).is_err());
    assert!(Metainfo::from_info_bytes(b"d4:infoi1ee", vec![]).is_err());
}
