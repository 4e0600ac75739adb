"""2D Matryoshka: the layer loss on a tiny model, and layer-truncated encoding (save -> load -> encode --layers L
equals the model's own first-L-layer output). A tiny random BERT built here: no download, a second or two."""

import numpy as np
import pytest
import torch

WORDS = "the a cat dog sat ran on in mat park stocks fell rose market team won lost game film star music band".split()
TEXTS = ["the cat sat on the mat", "a dog ran in the park", "stocks fell", "the market rose", "the team won the game",
         "a film star", "the band lost", "music in the park"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from transformers import BertConfig, BertModel, BertTokenizer

    root = tmp_path_factory.mktemp("tiny-bert")
    hf = root / "hf"
    hf.mkdir()
    (hf / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizer(vocab_file=str(hf / "vocab.txt")).save_pretrained(str(hf))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(str(hf))
    st = SentenceTransformer(modules=[Transformer(str(hf), max_seq_length=32), Pooling(32, "mean"), Normalize()],
                             device="cpu")
    st.save(str(root / "st"))
    return root / "st"


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_layer_embeddings_last_layer_is_the_model_output(tiny_model):
    from repspace.compress.losses import layer_embeddings
    from repspace.encoders import get_encoder

    enc = get_encoder(str(tiny_model))
    with torch.no_grad():
        emb = layer_embeddings(enc.model, TEXTS, [1, 4])
    np.testing.assert_allclose(emb[4].numpy(), enc.encode_batch(TEXTS), atol=1e-5)
    assert not np.allclose(emb[1].numpy(), emb[4].numpy(), atol=1e-3)


def test_layer_pair_loss_is_last_layer_plus_mean_of_prior_layers(tiny_model):
    from repspace.compress.losses import InfoNCELoss, LayerPairLoss, MatryoshkaLoss, PairLoss, layer_embeddings
    from repspace.encoders import get_encoder

    st = get_encoder(str(tiny_model)).model
    crit = MatryoshkaLoss(InfoNCELoss(0.05), [8, 16, 32])
    q, d = TEXTS[:4], TEXTS[4:]
    st.eval()  # no dropout: the same forward twice
    with torch.no_grad():
        loss = LayerPairLoss(st, crit, [1, 2], kl_weight=0.0)((q, d))
        eq, ed = layer_embeddings(st, q, [1, 2, 4]), layer_embeddings(st, d, [1, 2, 4])
        expected = crit(eq[4], ed[4]) + (crit(eq[1], ed[1]) + crit(eq[2], ed[2])) / 2
        assert float(loss) == pytest.approx(float(expected), rel=1e-6)
        # no shallow layer: the plain pair loss; a KL term only adds (it is >= 0)
        assert float(LayerPairLoss(st, crit, [])((q, d))) == pytest.approx(float(PairLoss(st, crit)((q, d))), rel=1e-6)
        assert float(LayerPairLoss(st, crit, [1, 2], kl_weight=1.0)((q, d))) >= float(loss)
    st.train()
    loss = LayerPairLoss(st, crit, [1])((q, d))
    loss.backward()
    grads = [p.grad for n, p in st.named_parameters() if "encoder.layer.0." in n]
    assert grads and all(g is not None for g in grads)


def test_truncated_encoding_round_trip(tiny_model, tmp_path, cli):
    from repspace import Space
    from repspace.compress.finetune import finetune_matryoshka
    from repspace.compress.losses import layer_embeddings
    from repspace.encoders import get_encoder

    out = tmp_path / "ft"
    res = finetune_matryoshka(str(tiny_model), TEXTS[:4] * 2, TEXTS[4:] * 2, out, dims=(8, 16), layers=(1, 2),
                              batch_size=4, lr=1e-3, progress=False, threads=1)
    assert res["layers"] == [1, 2, 4] and res["dims"] == [8, 16, 32]
    full = get_encoder(str(out))
    with torch.no_grad():
        own = layer_embeddings(full.model, TEXTS, [2])[2].numpy()
    shallow = get_encoder(str(out), layers=2, dim=16)
    assert shallow.dim == 16 and shallow.version.endswith("+layers=2+dim=16") and shallow.version != full.version
    np.testing.assert_allclose(shallow.encode_batch(TEXTS), _unit(own[:, :16]), atol=1e-5)
    assert len(shallow.model[0].auto_model.encoder.layer) == 2

    (tmp_path / "t.txt").write_text("\n".join(TEXTS) + "\n")
    code, _, err = cli("encode", "--model", out, "--input", tmp_path / "t.txt", "--layers", 2, "--dim", 16,
                       "--out", tmp_path / "s", "--quiet")
    assert code == 0, err
    space = Space.load(tmp_path / "s")
    assert space.dim == 16 and space.extra.get("layers") == 2
    np.testing.assert_allclose(np.asarray(space.vectors), _unit(own[:, :16]), atol=1e-5)


def test_layers_out_of_range_names_the_flag(tiny_model, tmp_path, cli):
    from repspace.encoders import get_encoder
    from repspace.errors import InvalidInputError

    with pytest.raises(InvalidInputError) as e:
        get_encoder(str(tiny_model), layers=5)
    assert e.value.param == "layers" and "1..4" in str(e.value)
    (tmp_path / "t.txt").write_text("a cat\n")
    code, _, err = cli("encode", "--model", tiny_model, "--input", tmp_path / "t.txt", "--layers", 0,
                       "--out", tmp_path / "s")
    assert code == 2 and "--layers" in err and err.startswith("error:")
    code, _, err = cli("encode", "--model", "glove-50", "--input", tmp_path / "t.txt", "--layers", 1,
                       "--out", tmp_path / "s2")
    assert code == 2 and "sentence-transformers" in err
