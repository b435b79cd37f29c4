# owned by its issue; placeholder
