"""Tiny Hugging Face models built from configs (random weights, tokenizer trained here).

Tests need real models that load, train and predict through the same code as MiniLM, but in
well under a second per step; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterable
from typing import Any
from datetime import UTC, datetime
from pathlib import Path

from platforms.base import ModelCard
from platforms.local.catalog import LocalCatalog
from platforms.tasks import Task

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Built files, keyed by this module's own text: a change to a builder builds afresh.
BUILT = Path(tempfile.gettempdir()) / f"fmbot-tiny-models-{hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]}"


def wordpiece_tokenizer(texts: Iterable[str], vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(list(texts), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL))
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=128,
    )


def tiny_bert(head: str, texts: list[str], seed: int, **config: Any) -> tuple[Any, Any]:
    """A 2-layer, 32-wide BERT of `head` (a transformers class name) with a WordPiece tokenizer
    trained on `texts`; `config` adds to its BertConfig."""
    import torch
    import transformers

    torch.manual_seed(seed)
    tokenizer = wordpiece_tokenizer(texts)
    bert = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=64, max_position_embeddings=128,
                                   pad_token_id=tokenizer.pad_token_id, **config)
    return getattr(transformers, head)(bert), tokenizer


def add_tiny_bert(root: Path, texts: Iterable[str], *, name: str = "tiny-bert",
                  tasks: tuple[Task, ...] = (Task.TEXT_CLASSIFICATION,), seed: int = 0) -> ModelCard:
    """Save a 2-layer, 32-wide BERT with a locally trained WordPiece tokenizer into the catalog."""
    texts = list(texts)
    return _save(root, name, lambda: tiny_bert("BertModel", texts, seed), ["bert", seed, texts], tasks,
                 "A tiny BERT for tests.")


def add_tiny_classifier(root: Path, texts: Iterable[str], labels: list[str], *, name: str = "tiny-classifier",
                        seed: int = 0) -> ModelCard:
    """A tiny BERT with a sequence-classification head for `labels` and wide random weights, so
    that (unlike a fresh head on a random body, which answers one class for every row) models of
    different seeds predict differently from row to row, as comparisons need."""
    texts = list(texts)
    return _save(root, name, lambda: tiny_bert("BertForSequenceClassification", texts, seed, initializer_range=1.0,
                                               id2label=dict(enumerate(labels)),
                                               label2id={label: i for i, label in enumerate(labels)}),
                 ["bert-classifier", seed, labels, texts], (Task.TEXT_CLASSIFICATION,), "A tiny BERT classifier for tests.")


def unigram_tokenizer(texts: Iterable[str], vocab_size: int = 600):
    """A T5-style tokenizer: SentencePiece-like Unigram pieces, `</s>` after every text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<pad>", "</s>", "<unk>", "<s>"]
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(list(texts), trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=special, unk_token="<unk>"))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tokenizer.token_to_id("</s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   bos_token="<s>", model_max_length=512)


def add_tiny_t5(root: Path, texts: Iterable[str], *, name: str = "tiny-t5",
                tasks: tuple[Task, ...] = (Task.SUMMARIZATION, Task.TRANSLATION), seed: int = 0) -> ModelCard:
    """Save a 2-layer, 32-wide T5 (encoder-decoder) with a locally trained Unigram tokenizer."""
    texts = list(texts)

    def build():
        import torch
        from transformers import T5Config, T5ForConditionalGeneration

        torch.manual_seed(seed)
        tokenizer = unigram_tokenizer(texts)
        config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
                          pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                          bos_token_id=tokenizer.bos_token_id, decoder_start_token_id=tokenizer.pad_token_id)
        return T5ForConditionalGeneration(config), tokenizer

    return _save(root, name, build, ["t5", seed, texts], tasks, "A tiny T5 for tests.")


CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def byte_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 600):
    """A GPT-2-style byte-level BPE tokenizer with a small chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(list(texts), trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=256,
                                   chat_template=CHAT_TEMPLATE)


def add_tiny_gpt2(root: Path, texts: Iterable[str], *, name: str = "tiny-gpt2",
                  tasks: tuple[Task, ...] = (Task.TEXT_GENERATION, Task.CHAT_COMPLETION), seed: int = 0) -> ModelCard:
    """Save a 2-layer, 32-wide GPT-2 with a locally trained byte-level BPE tokenizer and chat template."""
    texts = list(texts)

    def build():
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel

        torch.manual_seed(seed)
        tokenizer = byte_bpe_tokenizer(texts)
        config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=256,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)
        return GPT2LMHeadModel(config), tokenizer

    return _save(root, name, build, ["gpt2", seed, texts], tasks, "A tiny GPT-2 for tests.")


def add_tiny_masked_bert(root: Path, texts: Iterable[str], *, name: str = "tiny-bert-mlm", seed: int = 0) -> ModelCard:
    """Save a 2-layer, 32-wide BERT with a masked-LM head, for fill-mask."""
    texts = list(texts)
    return _save(root, name, lambda: tiny_bert("BertForMaskedLM", texts, seed), ["bert-mlm", seed, texts],
                 (Task.FILL_MASK,), "A tiny masked-LM BERT for tests.")


def _save(root: Path, name: str, build: Callable[[], tuple], key: list, tasks: tuple[Task, ...],
          description: str) -> ModelCard:
    """Register a tiny model in the catalog at `root`. Its files are built once (the same builder,
    texts and seed give the same weights) and copied for each test, which may train or delete them."""
    built = BUILT / hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    if not built.is_dir():
        BUILT.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=BUILT))
        model, tokenizer = build()
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(built)
        except OSError:  # another test process built it first
            shutil.rmtree(staging)
    catalog = LocalCatalog(root)
    version, folder = catalog.new_version_dir(name)
    shutil.copytree(built, folder, dirs_exist_ok=True)
    return catalog.register(folder, ModelCard(
        name=name, version=version, tasks=list(tasks), license="mit", description=description,
        source="test", created_at=datetime.now(UTC),
    ))
