//! The graph contracts of the two layouts (names, element types, ranks, after
//! `VLM-EXPORTS.md`), and the check of a session's declared inputs and
//! outputs against them. Pure: tested without any model.

use super::manifest::{Architecture, Manifest};

/// Element type a port must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dt {
    F32,
    I64,
    Bool,
    /// f32, f16 or bf16: past/present key-values, which the loop only moves
    /// from one step to the next (step 0 creates empty ones of the declared
    /// type).
    Float,
}

impl Dt {
    fn accepts(self, ty: &str) -> bool {
        match self {
            Dt::F32 => ty == "f32",
            Dt::I64 => ty == "i64",
            Dt::Bool => ty == "bool",
            Dt::Float => matches!(ty, "f32" | "f16" | "bf16"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Dt::F32 => "f32",
            Dt::I64 => "i64",
            Dt::Bool => "bool",
            Dt::Float => "f32/f16/bf16",
        }
    }
}

/// One expected input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub dtype: Dt,
    pub rank: usize,
    /// Fed only when the graph declares it (`use_cache_branch`,
    /// `encoder_attention_mask`).
    pub optional: bool,
}

fn port(name: impl Into<String>, dtype: Dt, rank: usize) -> Port {
    Port {
        name: name.into(),
        dtype,
        rank,
        optional: false,
    }
}

fn optional(name: impl Into<String>, dtype: Dt, rank: usize) -> Port {
    Port {
        optional: true,
        ..port(name, dtype, rank)
    }
}

/// What a graph declares about one input or output: its name, element type
/// (`f32`, `i64`, `bool`, `f16`, ...; `None` for a non-tensor) and rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub name: String,
    pub dtype: Option<String>,
    pub rank: usize,
    /// Fixed sizes per axis (`None` where symbolic).
    pub dims: Vec<Option<i64>>,
}

/// The role of a graph in the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    VisionEncoder,
    EmbedTokens,
    Encoder,
    Decoder,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::VisionEncoder => "vision_encoder",
            Role::EmbedTokens => "embed_tokens",
            Role::Encoder => "encoder",
            Role::Decoder => "decoder",
        }
    }
}

/// Expected inputs and outputs of one graph.
#[derive(Debug, Clone)]
pub struct Contract {
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
}

/// Names of the past inputs and present outputs, in feeding order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheNames {
    /// Self-attention cache (grows one position per step).
    pub past: Vec<String>,
    pub present: Vec<String>,
    /// Encoder-decoder cross-attention cache (computed on step 0, then fixed).
    pub cross_past: Vec<String>,
    pub cross_present: Vec<String>,
}

impl CacheNames {
    pub fn new(arch: Architecture, layers: usize) -> Self {
        let mut n = CacheNames::default();
        for i in 0..layers {
            for kv in ["key", "value"] {
                match arch {
                    Architecture::DecoderOnly => {
                        n.past.push(format!("past_key_values.{i}.{kv}"));
                        n.present.push(format!("present.{i}.{kv}"));
                    }
                    Architecture::EncoderDecoder => {
                        n.past.push(format!("past_key_values.{i}.decoder.{kv}"));
                        n.present.push(format!("present.{i}.decoder.{kv}"));
                        n.cross_past
                            .push(format!("past_key_values.{i}.encoder.{kv}"));
                        n.cross_present.push(format!("present.{i}.encoder.{kv}"));
                    }
                }
            }
        }
        n
    }
}

/// The contract of `role` in the manifest's layout.
pub fn contract(m: &Manifest, role: Role) -> Contract {
    let arch = m.architecture;
    match (role, arch) {
        (Role::VisionEncoder, Architecture::EncoderDecoder) => Contract {
            inputs: vec![port("pixel_values", Dt::F32, 4)],
            outputs: vec![port("image_features", Dt::F32, 3)],
        },
        (Role::VisionEncoder, Architecture::DecoderOnly) => Contract {
            inputs: vec![
                port("pixel_values", Dt::F32, 5),
                optional("pixel_attention_mask", Dt::Bool, 4),
            ],
            outputs: vec![port("image_features", Dt::F32, 3)],
        },
        (Role::EmbedTokens, _) => Contract {
            inputs: vec![port("input_ids", Dt::I64, 2)],
            outputs: vec![port("inputs_embeds", Dt::F32, 3)],
        },
        (Role::Encoder, _) => Contract {
            inputs: vec![
                port("attention_mask", Dt::I64, 2),
                port("inputs_embeds", Dt::F32, 3),
            ],
            outputs: vec![port("last_hidden_state", Dt::F32, 3)],
        },
        (Role::Decoder, _) => {
            let names = CacheNames::new(arch, m.decoder.layers);
            let mut inputs = vec![port("inputs_embeds", Dt::F32, 3)];
            match arch {
                Architecture::EncoderDecoder => {
                    inputs.push(optional("encoder_attention_mask", Dt::I64, 2));
                    inputs.push(port("encoder_hidden_states", Dt::F32, 3));
                    inputs.push(optional("use_cache_branch", Dt::Bool, 1));
                }
                Architecture::DecoderOnly => {
                    inputs.push(port("attention_mask", Dt::I64, 2));
                    // Rank 2 [b, s]; Qwen2-VL's 3-D rotary positions are
                    // rank 3 [3, b, s] and are refused here until supported.
                    inputs.push(port("position_ids", Dt::I64, 2));
                }
            }
            let mut outputs = vec![port("logits", Dt::F32, 3)];
            for n in names.past.iter().chain(&names.cross_past) {
                inputs.push(port(n.clone(), Dt::Float, 4));
            }
            for n in names.present.iter().chain(&names.cross_present) {
                outputs.push(port(n.clone(), Dt::Float, 4));
            }
            Contract { inputs, outputs }
        }
    }
}

/// Checks declared inputs/outputs against a contract; returns every problem
/// in one message, or `Ok` with the optional inputs the graph declares.
pub fn check(
    contract: &Contract,
    inputs: &[Declared],
    outputs: &[Declared],
) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    let mut optional_present = Vec::new();
    for want in &contract.inputs {
        match inputs.iter().find(|d| d.name == want.name) {
            None if want.optional => {}
            None => problems.push(format!(
                "missing input `{}` ({}, rank {})",
                want.name,
                want.dtype.name(),
                want.rank
            )),
            Some(d) => {
                if want.optional {
                    optional_present.push(want.name.clone());
                }
                compare("input", want, d, &mut problems);
            }
        }
    }
    for d in inputs {
        if !contract.inputs.iter().any(|p| p.name == d.name) {
            problems.push(format!("unexpected input `{}`", d.name));
        }
    }
    for want in &contract.outputs {
        match outputs.iter().find(|d| d.name == want.name) {
            None => problems.push(format!(
                "missing output `{}` ({}, rank {})",
                want.name,
                want.dtype.name(),
                want.rank
            )),
            Some(d) => compare("output", want, d, &mut problems),
        }
    }
    if problems.is_empty() {
        Ok(optional_present)
    } else {
        let names = |ds: &[Declared]| {
            ds.iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(format!(
            "{}; the graph declares inputs [{}] and outputs [{}]",
            problems.join("; "),
            names(inputs),
            names(outputs)
        ))
    }
}

fn compare(kind: &str, want: &Port, got: &Declared, problems: &mut Vec<String>) {
    let ty = got.dtype.as_deref().unwrap_or("non-tensor");
    if !want.dtype.accepts(ty) {
        problems.push(format!(
            "{kind} `{}` is {ty}, expected {}",
            want.name,
            want.dtype.name()
        ));
    }
    if got.rank != want.rank {
        let hint = if want.name == "position_ids" && got.rank == 3 {
            " (3-D rotary positions as in Qwen2-VL are not supported yet)"
        } else {
            ""
        };
        problems.push(format!(
            "{kind} `{}` has rank {}, expected {}{hint}",
            want.name, got.rank, want.rank
        ));
    }
}

/// Checks that fixed head counts and sizes of the cache ports agree with the
/// manifest's `decoder.kv_heads` / `head_dim` (axes 1 and 3).
pub fn check_cache_dims(m: &Manifest, inputs: &[Declared]) -> Result<(), String> {
    let names = CacheNames::new(m.architecture, m.decoder.layers);
    for name in names.past.iter().chain(&names.cross_past) {
        let Some(d) = inputs.iter().find(|d| &d.name == name) else {
            continue;
        };
        let expect = [
            (1, m.decoder.kv_heads, "decoder.kv_heads"),
            (3, m.decoder.head_dim, "decoder.head_dim"),
        ];
        for (axis, want, field) in expect {
            if let Some(Some(got)) = d.dims.get(axis) {
                if *got >= 0 && *got as usize != want {
                    return Err(format!(
                        "input `{name}` has {got} on axis {axis}, the manifest's {field} is {want}"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(arch: &str) -> Manifest {
        let v = serde_json::json!({
            "format": "docpipe-vlm/1", "architecture": arch, "family": "x",
            "graphs": {"vision_encoder": "v", "embed_tokens": "e", "encoder": "n", "decoder": "d"},
            "image": {"size": [64, 64], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "image_tokens": 4},
            "prompt": "<image>{schema}", "tokens": {"pad": 1, "eos": 2, "decoder_start": 2, "image": 3},
            "decoder": {"layers": 1, "kv_heads": 2, "head_dim": 16, "hidden": 32}
        });
        Manifest::parse(&v.to_string()).unwrap()
    }

    fn declared(ports: &[Port]) -> Vec<Declared> {
        ports
            .iter()
            .map(|p| Declared {
                name: p.name.clone(),
                dtype: Some(match p.dtype {
                    Dt::F32 | Dt::Float => "f32".into(),
                    Dt::I64 => "i64".into(),
                    Dt::Bool => "bool".into(),
                }),
                rank: p.rank,
                dims: vec![None; p.rank],
            })
            .collect()
    }

    #[test]
    fn decoder_contracts_name_every_cache_port() {
        let m = manifest("encoder-decoder");
        let c = contract(&m, Role::Decoder);
        let names: Vec<&str> = c.inputs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "inputs_embeds",
                "encoder_attention_mask",
                "encoder_hidden_states",
                "use_cache_branch",
                "past_key_values.0.decoder.key",
                "past_key_values.0.decoder.value",
                "past_key_values.0.encoder.key",
                "past_key_values.0.encoder.value",
            ]
        );
        let m = manifest("decoder-only");
        let c = contract(&m, Role::Decoder);
        let outs: Vec<&str> = c.outputs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(outs, ["logits", "present.0.key", "present.0.value"]);
    }

    #[test]
    fn check_reports_every_problem() {
        struct Case {
            name: &'static str,
            edit: fn(&mut Vec<Declared>, &mut Vec<Declared>),
            want: Result<Vec<&'static str>, Vec<&'static str>>,
        }
        let cases = [
            Case {
                name: "exact",
                edit: |_, _| {},
                want: Ok(vec!["encoder_attention_mask", "use_cache_branch"]),
            },
            Case {
                name: "optional inputs left out",
                edit: |i, _| {
                    i.retain(|d| d.name != "use_cache_branch" && d.name != "encoder_attention_mask")
                },
                want: Ok(vec![]),
            },
            Case {
                name: "renamed input",
                edit: |i, _| i[0].name = "input_embeds".into(),
                want: Err(vec![
                    "missing input `inputs_embeds` (f32, rank 3)",
                    "unexpected input `input_embeds`",
                ]),
            },
            Case {
                name: "wrong dtype and rank",
                edit: |i, o| {
                    i[0].dtype = Some("i64".into());
                    o[0].rank = 2;
                },
                want: Err(vec![
                    "input `inputs_embeds` is i64, expected f32",
                    "output `logits` has rank 2, expected 3",
                ]),
            },
            Case {
                name: "missing present",
                edit: |_, o| o.truncate(1),
                want: Err(vec!["missing output `present.0.decoder.key`"]),
            },
            Case {
                name: "f16 cache is fine",
                edit: |i, _| i[4].dtype = Some("f16".into()),
                want: Ok(vec!["encoder_attention_mask", "use_cache_branch"]),
            },
        ];
        let m = manifest("encoder-decoder");
        let c = contract(&m, Role::Decoder);
        for case in cases {
            let mut i = declared(&c.inputs);
            let mut o = declared(&c.outputs);
            (case.edit)(&mut i, &mut o);
            match (check(&c, &i, &o), case.want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{}", case.name),
                (Err(got), Err(want)) => {
                    for w in want {
                        assert!(got.contains(w), "{}: {got}", case.name);
                    }
                    assert!(got.contains("the graph declares inputs ["), "{got}");
                }
                (got, want) => panic!("{}: got {got:?}, wanted {want:?}", case.name),
            }
        }
    }

    #[test]
    fn qwen_positions_get_a_hint() {
        let m = manifest("decoder-only");
        let c = contract(&m, Role::Decoder);
        let mut i = declared(&c.inputs);
        let o = declared(&c.outputs);
        let pos = i.iter_mut().find(|d| d.name == "position_ids").unwrap();
        pos.rank = 3;
        let err = check(&c, &i, &o).unwrap_err();
        assert!(err.contains("Qwen2-VL"), "{err}");
    }

    #[test]
    fn cache_dims_follow_the_manifest() {
        let m = manifest("decoder-only");
        let c = contract(&m, Role::Decoder);
        let mut i = declared(&c.inputs);
        assert!(check_cache_dims(&m, &i).is_ok());
        let p = i
            .iter_mut()
            .find(|d| d.name == "past_key_values.0.key")
            .unwrap();
        p.dims = vec![None, Some(3), None, Some(16)];
        let err = check_cache_dims(&m, &i).unwrap_err();
        assert!(err.contains("decoder.kv_heads is 2"), "{err}");
    }
}
