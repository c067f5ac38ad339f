"""Tiny Hugging Face models built from configs (random weights, tokenizer trained here).

Tests need real models that load, train and predict through the same code as MiniLM, but in
well under a second per step; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from platforms.base import ModelCard
from platforms.local.catalog import LocalCatalog
from platforms.tasks import Task

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


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


def add_tiny_bert(root: Path, texts: Iterable[str], *, name: str = "tiny-bert",
                  tasks: tuple[Task, ...] = (Task.TEXT_CLASSIFICATION,), seed: int = 0) -> ModelCard:
    """Save a 2-layer, 32-wide BERT with a locally trained WordPiece tokenizer into the catalog."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    tokenizer = wordpiece_tokenizer(texts)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)
    catalog = LocalCatalog(root)
    version, folder = catalog.new_version_dir(name)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return catalog.register(folder, ModelCard(
        name=name, version=version, tasks=list(tasks), license="mit", description="A tiny BERT for tests.",
        source="test", created_at=datetime.now(UTC),
    ))
