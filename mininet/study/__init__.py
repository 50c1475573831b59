"""The client-server against peer-to-peer study, shared by its two settings.

- `bounds`: the fluid-model lower bounds (Kurose and Ross), pure;
- `config`: the parameters of a study, presets, sizes and rates;
- `procs`: processes the study starts, their JSON lines, stopping them by PID;
- `trial`: one run of one mode with N downloaders, on any set of hosts;
- `local`: hosts as processes on loopback, links emulated by `peer`'s rate limits;
- `net`: hosts in Mininet, links emulated by tc (TCLink), kernel feature checks;
- `results`: the CSV files, the Markdown tables and `summary.json`;
- `plot`: overall time against N with the bound curves (matplotlib, Agg).
"""
