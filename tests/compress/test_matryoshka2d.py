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


def test_layer_distill_loss_is_the_mean_over_depths_and_zero_at_the_teacher(tiny_model):
    from torch.nn import functional as F

    from repspace.compress.losses import LayerDistillLoss, MatryoshkaLoss, RankDistillationLoss, layer_embeddings
    from repspace.encoders import get_encoder

    st = get_encoder(str(tiny_model)).model
    st.eval()
    with torch.no_grad():
        emb = layer_embeddings(st, TEXTS, [1, 4])
        loss = LayerDistillLoss(st, [1, 4], [8, 16, 32], rank_weight=0.5)(TEXTS, emb[4])
        rank = MatryoshkaLoss(RankDistillationLoss(0.05), [8, 16, 32], n_truncated=1)
        shallow = (1 - F.cosine_similarity(emb[1], emb[4])).mean() + 0.5 * rank(emb[1], emb[4])
        deep = (1 - F.cosine_similarity(emb[4], emb[4])).mean() + 0.5 * rank(emb[4], emb[4])
        assert float(loss) == pytest.approx(float(shallow + deep) / 2, rel=1e-5)
        # the last layer taught its own embeddings: the cosine term is 0, the KL term only what prefixes lose
        own = LayerDistillLoss(st, [4], [32])(TEXTS, emb[4])
        assert float(own) == pytest.approx(0.0, abs=1e-5)
        # independent check of the KL term: scipy's entropy of the row softmaxes, averaged over rows
        from scipy.special import softmax
        from scipy.stats import entropy

        rng = np.random.default_rng(0)
        a, o = (_unit(rng.standard_normal((8, 32))) for _ in range(2))
        eye = np.eye(len(a), dtype=bool)
        p = softmax(np.where(eye, -1e9, o @ o.T / 0.05), axis=1)
        q = softmax(np.where(eye, -1e9, a @ a.T / 0.05), axis=1)
        expected = np.mean([entropy(p[i], q[i]) for i in range(len(a))])
        got = RankDistillationLoss(0.05)(torch.from_numpy(a), torch.from_numpy(o))
        assert expected > 0.1 and float(got) == pytest.approx(expected, rel=1e-6)


def test_distillation_moves_the_shallow_depth_towards_the_teacher(tiny_model, tmp_path, cli):
    from repspace.compress.finetune import distill_layers, finetune_matryoshka
    from repspace.compress.losses import LayerDistillLoss
    from repspace.encoders import get_encoder

    texts = [f"{a} {b} {c}" for a, b, c in zip(WORDS, WORDS[3:] + WORDS[:3], WORDS[7:] + WORDS[:7])] * 4

    teacher = torch.from_numpy(get_encoder(str(tiny_model)).encode_batch(texts))

    def gap(path):  # the shallow depth's distillation loss against the original model's embeddings
        st = get_encoder(str(path)).model
        st.eval()
        with torch.no_grad():
            return float(LayerDistillLoss(st, [1], [8, 16, 32])(texts, teacher))

    out = tmp_path / "d"
    res = distill_layers(str(tiny_model), texts, out, layers=[1], dims=(8, 16), epochs=15, batch_size=16, lr=3e-3,
                         progress=False, threads=1)
    assert res["layers"] == [1, 4] and res["texts"] == len(texts) and len(res["history"]) == 15
    assert res["history"][-1]["loss"] < res["history"][0]["loss"]
    assert gap(out) < 0.5 * gap(tiny_model)
    # the full model stays close to the teacher (itself before distillation)
    before, after = get_encoder(str(tiny_model)).encode_batch(texts), get_encoder(str(out)).encode_batch(texts)
    assert float(np.mean(np.sum(before * after, axis=1))) > 0.9

    # one pass of finetune: pairs, then distillation with the pair-tuned model as the teacher
    res = finetune_matryoshka(str(tiny_model), TEXTS[:4] * 2, TEXTS[4:] * 2, tmp_path / "f", dims=(8,), layers=(1,),
                              batch_size=4, lr=1e-3, progress=False, threads=1, distill=texts, distill_epochs=2)
    assert res["distill"]["texts"] == len(texts) and len(res["distill"]["history"]) == 2
    assert get_encoder(str(tmp_path / "f"), layers=1).dim == 32


def test_distillation_bad_input_names_the_parameter(tiny_model, tmp_path, cli):
    from repspace.compress.finetune import distill_layers, finetune_matryoshka
    from repspace.errors import InvalidInputError

    with pytest.raises(InvalidInputError) as e:
        finetune_matryoshka(str(tiny_model), TEXTS[:4], TEXTS[4:], tmp_path / "x", distill=TEXTS, progress=False)
    assert e.value.param == "distill"
    with pytest.raises(InvalidInputError) as e:
        distill_layers(str(tiny_model), ["one"], tmp_path / "x", layers=[1], progress=False)
    assert e.value.param == "distill"
    with pytest.raises(InvalidInputError) as e:
        distill_layers(str(tiny_model), TEXTS, tmp_path / "x", layers=[1], dims=(8,), teacher="minilm-l6",
                       progress=False)
    assert e.value.param == "teacher" and "384" in str(e.value)
    assert not (tmp_path / "x").exists()
    code, _, err = cli("compress", "finetune", "--model", tiny_model, "--layers", 1, "--distill", "no-such-data",
                       "--out", tmp_path / "y")
    assert code == 2 and err.startswith("error:") and "--distill" in err
    code, _, err = cli("compress", "finetune", "--model", tiny_model, "--distill", "bbc-sentences@train",
                       "--out", tmp_path / "y")
    assert code == 2 and "--distill" in err and "layers" in err
    assert not (tmp_path / "y").exists()
