"""The lookup table: Pareto frontier, budget selection, and the table tool."""
import json

import pytest

import mutual_mm  # noqa: F401
from mutual_mm.deploy import (Subnet, TableRow, load_table, pareto_frontier,
                              plot_table, save_table, select_subnet)


def _rows():
    def row(w, s, flops, metric, ms=None):
        return TableRow(Subnet(w, s), flops, 1e6 * w, metric, ms)
    return [row(1.0, 224, 100, 0.80, 9.0), row(0.75, 224, 60, 0.74, 6.0),
            row(1.0, 160, 55, 0.76, 5.0), row(0.5, 224, 30, 0.60, 3.5),
            row(0.75, 160, 31, 0.71, 3.4), row(0.5, 160, 16, 0.58, 2.0),
            row(0.5, 128, 10, 0.45, 1.5)]


def test_pareto_frontier_keeps_only_unbeaten_subnets():
    keys = [r.subnet.key for r in pareto_frontier(_rows())]
    # 0.75-224 (60, 0.74) is beaten by the cheaper 1.0-160 (55, 0.76); 0.5-224 by nobody
    assert keys == ['w0.5_s128', 'w0.5_s160', 'w0.5_s224', 'w0.75_s160', 'w1_s160',
                    'w1_s224']


@pytest.mark.parametrize('budget, expected', [
    (100, 'w1_s224'), (59, 'w1_s160'), (40, 'w0.75_s160'), (30, 'w0.5_s224'),
    (12, 'w0.5_s128')])
def test_select_subnet_returns_the_best_within_the_budget(budget, expected):
    assert select_subnet(_rows(), max_flops=budget).subnet.key == expected


def test_select_subnet_by_latency_and_the_errors():
    assert select_subnet(_rows(), max_latency_ms=3.45).subnet.key == 'w0.75_s160'
    assert select_subnet(_rows(), max_flops=40, max_latency_ms=3.0).subnet.key == \
        'w0.5_s160'
    with pytest.raises(ValueError, match=r'no subnet fits max_flops=5.*w0.5_s128'):
        select_subnet(_rows(), max_flops=5)
    no_latency = [TableRow(r.subnet, r.flops, r.params, r.metric) for r in _rows()]
    with pytest.raises(ValueError, match='no latencies'):
        select_subnet(no_latency, max_latency_ms=3)


@pytest.mark.parametrize('budget', [0, -40.0, float('nan')])
def test_a_budget_that_is_not_positive_is_an_error(budget, capsys):
    with pytest.raises(ValueError, match=r'max_flops=.*valid: a positive number'):
        select_subnet(_rows(), max_flops=budget)
    with pytest.raises(ValueError, match=r'max_latency_ms=.*valid: a positive number'):
        select_subnet(_rows(), max_latency_ms=budget)
    from tools.build_lookup_table import main
    with pytest.raises(SystemExit):  # refused before any table is built
        main(['cfg.py', 'ckpt.pth', '--out-dir', 'x', '--budgets', '40', str(budget)])
    assert f"'{budget}': valid: a positive number of GFLOPs" in capsys.readouterr().err


def test_tables_round_trip_and_plot(tmp_path):
    rows = _rows() + [TableRow(Subnet(0.63, (1000, 360), 5), 7.0, 3.0, 0.3)]
    files = save_table(rows, str(tmp_path / 'table'), 'acc/top1')
    for path in (files['csv'], files['json']):
        again = load_table(path)
        assert [r.as_dict() for r in again] == [r.as_dict() for r in rows]
    saved = json.load(open(files['json']))
    assert saved['pareto'] == [r.subnet.key for r in pareto_frontier(rows)]
    assert select_subnet(files['csv'], max_flops=59).subnet.key == 'w1_s160'
    png = plot_table(rows, str(tmp_path / 'table.png'), 'acc/top1')
    assert open(png, 'rb').read(8) == b'\x89PNG\r\n\x1a\n'


def test_the_table_tool_on_a_trained_checkpoint(trained, tmp_path):
    from tools.build_lookup_table import main
    cfg, checkpoint, tmp = trained
    cfg_file = tmp_path / 'config.py'
    cfg.dump(str(cfg_file))
    rows = main([str(cfg_file), checkpoint, '--out-dir', str(tmp_path / 'lut'),
                 '--widths', '1.0', '0.5', '--resolutions', '48', '32', '--frames', '4',
                 '--num-batches', '2', '--latency', '--budgets', '1000', '0.0001'])
    by_key = {r.subnet.key: r for r in rows}
    assert sorted(by_key) == ['w0.5_s32_f4', 'w0.5_s48_f4', 'w1_s32_f4', 'w1_s48_f4']
    assert by_key['w1_s48_f4'].flops > by_key['w0.5_s48_f4'].flops > \
        by_key['w0.5_s32_f4'].flops
    # width scales the conv FLOPs ~quadratically, resolution ~quadratically
    ratio = by_key['w0.5_s48_f4'].flops / by_key['w1_s48_f4'].flops
    assert 0.2 < ratio < 0.35
    assert by_key['w0.5_s48_f4'].params < 0.35 * by_key['w1_s48_f4'].params
    assert all(0 <= r.metric <= 1 and r.latency_ms > 0 for r in rows)
    for name in ('table.csv', 'table.json', 'table.png'):
        assert (tmp_path / 'lut' / name).is_file()
