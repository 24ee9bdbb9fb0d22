"""Reading PISM's clean-image answers for CMAB (unit scope: a hand-written scores file)."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.cmab.responses import responses_from_pism


def test_solved_unsolved_errored_and_old_rows(tmp_path):
    path = tmp_path / "scores.parquet"
    pq.write_table(pa.table({
        "id": ["a", "b", "c", "d"],
        "unsolved": [False, True, None, False],
        "error": [None, None, "engine_error", None],
        "clean_response": ["\\boxed{3}", None, None, None],  # d: solved but scored before the column was filled
    }), path)
    assert responses_from_pism(path) == {"a": "\\boxed{3}", "b": None}


def test_not_a_pism_file_is_refused(tmp_path):
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"id": ["a"]}), path)
    with pytest.raises(ValueError, match="not a PISM scores file"):
        responses_from_pism(path)
