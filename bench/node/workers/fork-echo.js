// child_process IPC's worker: answers each message with itself.
process.on('message', (m) => process.send(m));
