"""How edgeq reaches a board: the transport interface, ssh (paramiko, host keys, ssh_config, jump hosts,
SFTP and exec-channel files) and the local transport."""
