"""Reading the bundled Bitbrains and PlanetLab sample."""

import gzip
import os

import numpy as np
import pytest

from shadow_service.clouds.sim import traces


def test_bundled_sample_has_both_data_sets_and_a_readme():
    found = traces.discover(traces.BUNDLED_TRACE_DIR)
    assert len(found['bitbrains']) >= 10
    assert len(found['planetlab']) >= 30
    assert os.path.exists(os.path.join(traces.BUNDLED_TRACE_DIR,
                                       'README.md'))


def test_bitbrains_is_resampled_to_300s_and_clipped():
    path = traces.discover(traces.BUNDLED_TRACE_DIR)['bitbrains'][0]
    trace = traces.read_bitbrains(path)
    assert trace.cpu_util.min() >= 0 and trace.cpu_util.max() <= 1
    assert trace.vcpus >= 1 and trace.ram_mb >= 512
    assert len(trace.disk_kbps) == len(trace.cpu_util) > 8000


def test_bitbrains_duplicates_keep_the_last_row(tmp_path):
    header = 'Timestamp [ms];\t' + ';\t'.join(['x'] * 10) + '\n'
    rows = ['0;\t2;\t1000;\t100;\t10;\t1;\t1;\t0;\t0;\t0;\t0\n',
            '300;\t2;\t1000;\t200;\t20;\t1;\t1;\t0;\t0;\t0;\t0\n',
            '300;\t2;\t1000;\t2000;\t200;\t1;\t1;\t0;\t0;\t0;\t0\n',
            '900;\t2;\t1000;\t500;\t50;\t1;\t1;\t0;\t0;\t0;\t0\n']
    path = tmp_path / 'x.csv.gz'
    with gzip.open(path, 'wt') as handle:
        handle.write(header + ''.join(rows))
    trace = traces.read_bitbrains(str(path))
    # 2000 MHz of 1000 is clipped to 1; the 600 s gap is interpolated.
    np.testing.assert_allclose(trace.cpu_util, [0.1, 1.0, 0.75, 0.5])


def test_planetlab_is_cpu_only():
    path = traces.discover(traces.BUNDLED_TRACE_DIR)['planetlab'][0]
    trace = traces.read_planetlab(path)
    assert trace.steps == 288
    assert not trace.disk_kbps.any() and not trace.net_kbps.any()


def test_unreadable_trace_is_a_trace_error(tmp_path):
    bad = tmp_path / 'bad'
    bad.write_text('12\nnot a number\n')
    with pytest.raises(traces.TraceError):
        traces.read_planetlab(str(bad))
    with pytest.raises(traces.TraceError):
        traces.discover(str(tmp_path))
