{
  "targets": [
    {
      "target_name": "sluice_bpf",
      "sources": ["sluice_bpf.c"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    },
    {
      "target_name": "sluice_peercred",
      "sources": ["peer_cred.c"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
    }
  ]
}
