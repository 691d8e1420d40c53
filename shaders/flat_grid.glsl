// Invocations numbered row by row over a (grid_width x rows) grid of cells,
// LOCAL_SIZE per work group, work groups laid out along x then y (a long row
// of groups is split to stay under GL_MAX_COMPUTE_WORK_GROUP_COUNT). Narrow
// deep levels then fill every SIMD lane instead of leaving the right part of a
// 2D work group idle; the last group's spare invocations fall below the grid.

#ifndef LOCAL_SIZE
#define LOCAL_SIZE 64
#endif

layout(local_size_x = LOCAL_SIZE, local_size_y = 1, local_size_z = 1) in;

uniform int grid_width;      // cells per row

ivec2 grid_cell() {
    int group = int(gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x);
    int invocation = group * LOCAL_SIZE + int(gl_LocalInvocationIndex);
    return ivec2(invocation % grid_width, invocation / grid_width);
}
