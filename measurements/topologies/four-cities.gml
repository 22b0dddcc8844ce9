# A small Internet-like topology for pctcp's emulator, in Shadow's GML format
# (https://shadow.github.io/docs/guide/network_graph_spec.html). Four metro areas where many
# Tor relays run; where each number comes from: README.md beside this file.
#   one-way latency = 2.1 x great-circle distance / (200 km/ms, light in fibre), rounded
graph [
  directed 0
  node [ id 0 label "Frankfurt" host_bandwidth_down "100 Mbit" host_bandwidth_up "100 Mbit" ]
  node [ id 1 label "Stockholm" host_bandwidth_down "100 Mbit" host_bandwidth_up "100 Mbit" ]
  node [ id 2 label "New York" host_bandwidth_down "100 Mbit" host_bandwidth_up "100 Mbit" ]
  node [ id 3 label "Chicago (clients)" host_bandwidth_down "50 Mbit" host_bandwidth_up "25 Mbit" ]
  # Hosts in one metro area.
  edge [ source 0 target 0 latency "2 ms" packet_loss 0.0 ]
  edge [ source 1 target 1 latency "2 ms" packet_loss 0.0 ]
  edge [ source 2 target 2 latency "2 ms" packet_loss 0.0 ]
  edge [ source 3 target 3 latency "2 ms" packet_loss 0.0 ]
  # Frankfurt-Stockholm 1190 km; Frankfurt-New York 6200 km; Frankfurt-Chicago 6950 km
  edge [ source 0 target 1 latency "13 ms" packet_loss 0.001 ]
  edge [ source 0 target 2 latency "65 ms" packet_loss 0.005 ]
  edge [ source 0 target 3 latency "73 ms" packet_loss 0.005 ]
  # Stockholm-New York 6300 km; Stockholm-Chicago 6800 km
  edge [ source 1 target 2 latency "66 ms" packet_loss 0.005 ]
  edge [ source 1 target 3 latency "71 ms" packet_loss 0.005 ]
  # New York-Chicago 1150 km
  edge [ source 2 target 3 latency "12 ms" packet_loss 0.001 ]
]
