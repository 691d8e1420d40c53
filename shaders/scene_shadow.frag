#version 330 core
// The shadow pass writes depth only.
void main() {}
